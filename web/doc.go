// Package web is the HTTP face of taskqueue: the chi router of every route
// in docs/API.md, authentication and authorization (over package auth), the
// middleware every request goes through, the embedded web app (web/dist),
// and the one place where errors become problem+json responses
// (writeProblem and problemFor in problem.go: handlers never choose a status
// for an error; a problem type's name is part of the API).
//
// api/openapi.yaml is the contract: the tests validate every response
// against it and check that the router's routes are the spec's paths, so a
// new route, status, header or field goes into the spec in the same commit.
//
// The design (the middleware in order, commands and their headers, how the
// web app is served): docs/ARCHITECTURE.md, "web".
//
// Server is safe for concurrent use.
package web
