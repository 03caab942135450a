// Package api holds the service's OpenAPI contract, embedded so tests check handlers against the
// very file clients read.
package api

import _ "embed"

// OpenAPI is api/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
