package bedrock

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/infergate/infergate/l7/translate/outbound"
)

// FileCredentials reads AWS credentials from a shared credentials file
// (INI: [profile] with aws_access_key_id, aws_secret_access_key and
// optionally aws_session_token), read again when it changes
// (outbound.Secret), so rotated keys are used without a restart.
type FileCredentials struct {
	File    *outbound.Secret
	Profile string
}

// Credentials implements CredentialSource.
func (f *FileCredentials) Credentials() (aws.Credentials, error) {
	b, err := f.File.Bytes()
	if err != nil {
		return aws.Credentials{}, err
	}
	profile := f.Profile
	if profile == "" {
		profile = "default"
	}
	c, err := ParseCredentials(b, profile)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("AWS credentials file: %w", err)
	}
	return c, nil
}

// ParseCredentials reads profile from a shared credentials file.
func ParseCredentials(b []byte, profile string) (aws.Credentials, error) {
	var c aws.Credentials
	in := false
	found := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			name := strings.TrimSpace(line[1 : len(line)-1])
			name = strings.TrimPrefix(name, "profile ")
			in = name == profile
			found = found || in
			continue
		}
		if !in {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "aws_access_key_id":
			c.AccessKeyID = strings.TrimSpace(v)
		case "aws_secret_access_key":
			c.SecretAccessKey = strings.TrimSpace(v)
		case "aws_session_token":
			c.SessionToken = strings.TrimSpace(v)
		}
	}
	if !found {
		return c, fmt.Errorf("no profile %q", profile)
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return c, fmt.Errorf("profile %q lacks aws_access_key_id or aws_secret_access_key", profile)
	}
	c.Source = "infergate-file"
	return c, nil
}

// EnvCredentials are AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN, read once.
type EnvCredentials struct{ c aws.Credentials }

// NewEnvCredentials reads the environment (getenv: os.Getenv when nil).
func NewEnvCredentials(getenv func(string) string) (*EnvCredentials, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := aws.Credentials{AccessKeyID: getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken: getenv("AWS_SESSION_TOKEN"), Source: "infergate-env"}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return nil, errors.New("AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is empty")
	}
	return &EnvCredentials{c: c}, nil
}

// Credentials implements CredentialSource.
func (e *EnvCredentials) Credentials() (aws.Credentials, error) { return e.c, nil }

// StaticCredentials are fixed (tests).
type StaticCredentials aws.Credentials

// Credentials implements CredentialSource.
func (s StaticCredentials) Credentials() (aws.Credentials, error) { return aws.Credentials(s), nil }
