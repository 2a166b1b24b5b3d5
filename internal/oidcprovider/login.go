package oidcprovider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// Tokens are what the token endpoint answered.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	IDToken      string
}

// SignIn signs username in as a browser would, through the provider's own
// endpoints: the authorization endpoint with a PKCE challenge, the login
// page's form, the redirect back with a code, and the token endpoint with
// the verifier. redirectURI must be one of the client's.
func (p *Provider) SignIn(ctx context.Context, redirectURI, username, password string, scopes ...string) (Tokens, error) {
	conf, err := p.oauth2Config(ctx, redirectURI, scopes)
	if err != nil {
		return Tokens{}, err
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirectURI) {
			return http.ErrUseLastResponse // the code is for the client, not a page to load
		}
		return nil
	}}
	verifier := oauth2.GenerateVerifier()
	res, err := browser.Get(conf.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		return Tokens{}, fmt.Errorf("sign in %s: authorize: %w", username, err)
	}
	res.Body.Close()
	id := res.Request.URL.Query().Get("authRequestID")
	if res.StatusCode != http.StatusOK || id == "" {
		return Tokens{}, fmt.Errorf("sign in %s: authorize answered %s at %s, not the login page", username, res.Status, res.Request.URL)
	}
	res, err = browser.PostForm(p.issuer+"/login/username", url.Values{"id": {id}, "username": {username}, "password": {password}})
	if err != nil {
		return Tokens{}, fmt.Errorf("sign in %s: login: %w", username, err)
	}
	res.Body.Close()
	loc, err := res.Location()
	if err != nil {
		return Tokens{}, fmt.Errorf("sign in %s: login answered %s without a redirect (wrong password?)", username, res.Status)
	}
	if e := loc.Query().Get("error"); e != "" {
		return Tokens{}, fmt.Errorf("sign in %s: %s: %s", username, e, loc.Query().Get("error_description"))
	}
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("state") != "state-1" {
		return Tokens{}, fmt.Errorf("sign in %s: redirected to %s without the code and state", username, loc)
	}
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Tokens{}, fmt.Errorf("sign in %s: token: %w", username, err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	return Tokens{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, IDToken: idToken}, nil
}

// Refresh redeems a refresh token for new tokens.
func (p *Provider) Refresh(ctx context.Context, redirectURI, refreshToken string) (Tokens, error) {
	conf, err := p.oauth2Config(ctx, redirectURI, nil)
	if err != nil {
		return Tokens{}, err
	}
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return Tokens{}, fmt.Errorf("refresh: %w", err)
	}
	id, _ := tok.Extra("id_token").(string)
	return Tokens{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, IDToken: id}, nil
}

func (p *Provider) oauth2Config(ctx context.Context, redirectURI string, scopes []string) (*oauth2.Config, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.issuer+"/.well-known/openid-configuration", nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	defer res.Body.Close()
	var d struct {
		Auth  string `json:"authorization_endpoint"`
		Token string `json:"token_endpoint"`
	}
	if err := json.NewDecoder(res.Body).Decode(&d); err != nil || d.Auth == "" {
		return nil, errors.Join(errors.New("discovery: no authorization endpoint"), err)
	}
	if len(scopes) == 0 {
		scopes = []string{"openid", "offline_access"}
	}
	return &oauth2.Config{
		ClientID:    p.store.client.id,
		Endpoint:    oauth2.Endpoint{AuthURL: d.Auth, TokenURL: d.Token, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: redirectURI,
		Scopes:      scopes,
	}, nil
}
