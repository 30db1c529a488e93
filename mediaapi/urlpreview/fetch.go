package urlpreview

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxRedirects is how many redirects a preview fetch follows.
const maxRedirects = 5

// ErrTooLarge is returned when a response body exceeds the size cap.
var ErrTooLarge = errors.New("response too large")

// ErrBadURL is returned for URLs that cannot be previewed (not http or https, no host).
var ErrBadURL = errors.New("url cannot be previewed")

// Fetcher makes guarded outbound HTTP requests with a size and time cap.
type Fetcher struct {
	client   *http.Client
	maxBytes int64
	agent    string
}

// Options configure a Fetcher.
type Options struct {
	Guard *Guard
	// Timeout bounds a whole fetch, redirects and body included.
	Timeout time.Duration
	// MaxBytes caps a response body.
	MaxBytes int64
	// UserAgent is sent with every request.
	UserAgent string
}

// NewFetcher returns a Fetcher whose every connection is checked by o.Guard.
func NewFetcher(o Options) *Fetcher {
	dialer := &net.Dialer{Timeout: o.Timeout, Control: o.Guard.Control}
	tr := &http.Transport{
		// No proxy: a proxy would make the connection on our behalf, unchecked.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   o.Timeout,
		ResponseHeaderTimeout: o.Timeout,
		MaxIdleConns:          16,
		IdleConnTimeout:       30 * time.Second,
	}
	c := &http.Client{
		Transport: tr,
		Timeout:   o.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			if err := CheckURL(req.URL); err != nil {
				return err
			}
			return nil
		},
	}
	return &Fetcher{client: c, maxBytes: o.MaxBytes, agent: o.UserAgent}
}

// CheckURL accepts only absolute http and https URLs with a host.
func CheckURL(u *url.URL) error {
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil {
		return ErrBadURL
	}
	return nil
}

// Response is a fetched document.
type Response struct {
	URL         *url.URL // after redirects
	ContentType string   // media type without parameters, lower-case
	Charset     string
	Body        []byte
}

// Fetch GETs rawURL, following at most maxRedirects redirects, and reads at
// most MaxBytes of the body (ErrTooLarge beyond). Connections to denied
// addresses fail with an error wrapping ErrBlocked.
func (f *Fetcher) Fetch(ctx context.Context, u *url.URL) (*Response, error) {
	if err := CheckURL(u); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, ErrBadURL
	}
	req.Header.Set("User-Agent", f.agent)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,image/*;q=0.9,*/*;q=0.5")
	req.Header.Set("Accept-Language", "en")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("%s answered %d", u.Host, resp.StatusCode)
	}
	if resp.ContentLength > f.maxBytes {
		return nil, ErrTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > f.maxBytes {
		return nil, ErrTooLarge
	}
	out := &Response{URL: resp.Request.URL, Body: body}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err == nil {
		out.ContentType = strings.ToLower(mt)
		out.Charset = strings.ToLower(params["charset"])
	} else {
		out.ContentType = http.DetectContentType(body)
		out.ContentType, _, _ = strings.Cut(out.ContentType, ";")
	}
	return out, nil
}
