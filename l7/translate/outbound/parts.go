package outbound

import "github.com/infergate/infergate/l7/translate/chatwire"

// UserParts calls text and image with each part of a user message's
// content, in order (a string content is one text part), so that a
// provider kind only says how it writes each. An image part is read with
// ParseImage; image's error, an unreadable image and a part type no
// provider takes are the client's (400), as is an empty array.
func UserParts(c *chatwire.Content, text func(string), image func(Image) error) error {
	if !c.IsParts {
		text(c.JoinedText())
		return nil
	}
	if len(c.Parts) == 0 {
		return Invalid("a message has no content")
	}
	for _, p := range c.Parts {
		switch p.Type {
		case "text":
			text(p.Text)
		case "image_url":
			if p.ImageURL == nil {
				return Invalid("image_url part without image_url")
			}
			img, err := ParseImage(p.ImageURL.URL)
			if err != nil {
				return Invalid(err.Error())
			}
			if err := image(img); err != nil {
				return err
			}
		default:
			return Invalid("content part type " + Clip(p.Type) + " cannot be sent to this provider")
		}
	}
	return nil
}
