package store_test

import (
	"os"
	"testing"

	"example.com/deliverykit/reference-service/internal/platformtest"
)

// TestMain prepares testcontainers' environment for the containers these tests start.
func TestMain(m *testing.M) { os.Exit(platformtest.Run(m)) }
