package urlpreview

import (
	"bytes"
	"net/url"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/charset"
)

// maxDescription is the longest og:description kept (in runes), as a
// description taken from page text could otherwise be very long.
const maxDescription = 500

// ParseHTML extracts OpenGraph properties from an HTML document: every
// <meta property="og:*"> (or name="og:*"), with <title>, <meta
// name="description"> and the first <img> as fallbacks for og:title,
// og:description and og:image. Relative og:image URLs are resolved against
// base. contentCharset is the charset from the Content-Type header, if any.
func ParseHTML(body []byte, contentType string, base *url.URL) map[string]any {
	og := map[string]any{}
	r, err := charset.NewReader(bytes.NewReader(body), contentType)
	if err != nil {
		return og
	}
	z := html.NewTokenizer(r)
	var title, description, firstImg string
	inTitle, inBody := false, false
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			tn, hasAttr := z.TagName()
			tag := string(tn)
			attrs := map[string]string{}
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				attrs[strings.ToLower(string(k))] = string(v)
			}
			switch tag {
			case "meta":
				prop := attrs["property"]
				if prop == "" {
					prop = attrs["name"]
				}
				prop = strings.ToLower(strings.TrimSpace(prop))
				content, ok := attrs["content"]
				if !ok {
					continue
				}
				switch {
				case strings.HasPrefix(prop, "og:"):
					if _, dup := og[prop]; !dup { // the first of repeated properties wins
						og[prop] = strings.TrimSpace(content)
					}
				case prop == "description" && description == "":
					description = strings.TrimSpace(content)
				}
			case "title":
				if !inBody {
					inTitle = true
				}
			case "body":
				inBody = true
			case "img":
				if firstImg == "" {
					firstImg = attrs["src"]
				}
			}
		case html.EndTagToken:
			tn, _ := z.TagName()
			if string(tn) == "title" {
				inTitle = false
			}
		case html.TextToken:
			if inTitle && title == "" {
				title = strings.TrimSpace(string(z.Text()))
			}
		}
	}
	if _, ok := og["og:title"]; !ok && title != "" {
		og["og:title"] = title
	}
	if _, ok := og["og:description"]; !ok && description != "" {
		og["og:description"] = description
	}
	if d, ok := og["og:description"].(string); ok {
		if rs := []rune(d); len(rs) > maxDescription {
			og["og:description"] = string(rs[:maxDescription]) + "…"
		}
	}
	if _, ok := og["og:image"]; !ok && firstImg != "" {
		og["og:image"] = firstImg
	}
	if img, ok := og["og:image"].(string); ok {
		if u, err := base.Parse(img); err == nil && CheckURL(u) == nil {
			og["og:image"] = u.String()
		} else {
			delete(og, "og:image")
		}
	}
	return og
}
