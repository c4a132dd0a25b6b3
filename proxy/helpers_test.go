package proxy_test

import "github.com/portero-gateway/portero/internal/gatewaytest"

// Short names for the whole-gateway test harness (internal/gatewaytest).
type (
	harness     = gatewaytest.Harness
	harnessOpts = gatewaytest.Options
	received    = gatewaytest.Received
)

var (
	newHarness       = gatewaytest.New
	newHarnessWith   = gatewaytest.NewWith
	newMasterHarness = gatewaytest.NewMaster
	reasonOf         = gatewaytest.ReasonOf
	must             = gatewaytest.Must
	samClaims        = gatewaytest.SamClaims
)

const (
	loginCookie        = gatewaytest.LoginCookie
	testConfig         = gatewaytest.Config
	loginOIDCConfig    = gatewaytest.LoginOIDCConfig
	loginSessionConfig = gatewaytest.LoginSessionConfig
)
