package outbound

import (
	"encoding/base64"
	"errors"
	"strings"
)

// Image is an image part read from its URL.
type Image struct {
	// MediaType is image/png, image/jpeg, image/gif or image/webp.
	MediaType string
	// Data is the base64 of the image (a data: URL); empty for a URL.
	Data string
	// URL is an http(s) URL (empty for data).
	URL string
}

var errImageURL = errors.New("image_url must be a data: URL (base64) or an http(s) URL")

// ParseImage reads an image_url: a base64 data: URL or an http(s) URL. The
// base64 is checked, not decoded, so it passes on without a copy.
func ParseImage(u string) (Image, error) {
	if rest, ok := strings.CutPrefix(u, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		if !ok {
			return Image{}, errImageURL
		}
		mt, enc, _ := strings.Cut(meta, ";")
		if enc != "base64" {
			return Image{}, errors.New("image data: URL must be base64")
		}
		if !strings.HasPrefix(mt, "image/") {
			return Image{}, errors.New("image data: URL must have an image/ media type")
		}
		if _, err := base64.StdEncoding.DecodeString(data); err != nil {
			return Image{}, errors.New("image data: URL holds invalid base64")
		}
		return Image{MediaType: mt, Data: data}, nil
	}
	if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		return Image{URL: u, MediaType: mediaTypeOf(u)}, nil
	}
	return Image{}, errImageURL
}

// mediaTypeOf guesses an image URL's media type from its extension.
func mediaTypeOf(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	switch {
	case strings.HasSuffix(u, ".png"):
		return "image/png"
	case strings.HasSuffix(u, ".gif"):
		return "image/gif"
	case strings.HasSuffix(u, ".webp"):
		return "image/webp"
	}
	return "image/jpeg"
}

// Format is the media type's short name (png, jpeg, gif, webp).
func (i Image) Format() string {
	f, _ := strings.CutPrefix(i.MediaType, "image/")
	if f == "jpg" {
		return "jpeg"
	}
	return f
}
