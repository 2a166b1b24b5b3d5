package web

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// decodeJSON reads r's body into v: a JSON object of known fields only,
// nothing after it. Errors name the field when there is one and wrap what
// problemFor maps (a fieldError, a *http.MaxBytesError).
//
// The Content-Type is not checked: the body must be JSON whatever it says,
// so `curl -d '{...}'` (which sends a form type) works as people expect.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if err := dec.Decode(&struct{}{}); err != io.EOF {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return err
			}
			return badField("body", "has data after the JSON object")
		}
		return nil
	}
	var (
		mbe    *http.MaxBytesError
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return badField("body", "is empty; a JSON object is required")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return badField("body", "is not valid JSON: %v", err)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return badField(field, "must be a JSON %s, not %s", typ.Type.Kind(), typ.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badField(strings.Trim(name, `"`), "is not a known field")
	}
	return badField("body", "is not valid: %v", err)
}
