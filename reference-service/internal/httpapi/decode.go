package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 64 << 10

// decodeJSON reads exactly one JSON object into dst, strictly: the media type must be JSON, the
// body at most MaxBodyBytes, every field known, nothing after the object. Each failure names the
// field or header at fault.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return edge(kindMediaType, fmt.Sprintf("Content-Type %q is not application/json", ct),
			InvalidParam{Name: "Content-Type", Reason: "must be application/json"})
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return edge(kindTooLarge, fmt.Sprintf("the body exceeds %d bytes", MaxBodyBytes),
				InvalidParam{Name: "body", Reason: fmt.Sprintf("must be at most %d bytes", MaxBodyBytes)})
		}
		return edge(kindMalformedJSON, "the body could not be read", InvalidParam{Name: "body", Reason: "could not be read"})
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return edge(kindMalformedJSON, "the body is empty", InvalidParam{Name: "body", Reason: "must be a JSON object"})
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return edge(kindMalformedJSON, "the body holds data after the JSON object",
			InvalidParam{Name: "body", Reason: "must hold exactly one JSON object"})
	}
	return nil
}

func jsonProblem(err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		return edge(kindMalformedJSON, fmt.Sprintf("invalid JSON at byte %d: %v", syntax.Offset, syntax),
			InvalidParam{Name: "body", Reason: "must be valid JSON"})
	case errors.As(err, &typ):
		name := typ.Field
		if name == "" {
			name = "body"
		}
		reason := "must be " + jsonTypeName(typ.Type.Kind().String())
		return edge(kindMalformedJSON, fmt.Sprintf("%s %s, not %s", name, reason, typ.Value),
			InvalidParam{Name: name, Reason: reason})
	case errors.Is(err, io.ErrUnexpectedEOF):
		return edge(kindMalformedJSON, "the JSON body ends early", InvalidParam{Name: "body", Reason: "must be complete JSON"})
	}
	if field, ok := unknownField(err); ok {
		return edge(kindUnknownField, fmt.Sprintf("unknown field %q", field), InvalidParam{Name: field, Reason: "is not a known field"})
	}
	return edge(kindMalformedJSON, err.Error(), InvalidParam{Name: "body", Reason: "must be valid JSON for this operation"})
}

// unknownField extracts the name from encoding/json's unknown-field error, which has no type.
func unknownField(err error) (string, bool) {
	const prefix = "json: unknown field "
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		return "", false
	}
	return strings.Trim(strings.TrimPrefix(msg, prefix), `"`), true
}

func jsonTypeName(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer in range"
	case strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "slice", kind == "array":
		return "an array"
	case kind == "struct", kind == "map", kind == "ptr":
		return "an object"
	case kind == "bool":
		return "a boolean"
	}
	return "of another type"
}
