package proxy_test

import "github.com/portero-gateway/portero/internal/gatewaytest"

// Short names for the whole-gateway test harness (internal/gatewaytest).
type (
	harness     = gatewaytest.Harness
	harnessOpts = gatewaytest.Options
	received    = gatewaytest.Received
)

var (
	newHarness           = gatewaytest.New
	newHarnessWith       = gatewaytest.NewWith
	newLoginHarness      = gatewaytest.NewLogin
	newMasterHarness     = gatewaytest.NewMaster
	reasonOf             = gatewaytest.ReasonOf
	must                 = gatewaytest.Must
	seedSQL              = gatewaytest.SeedSQL
	aliceClaims          = gatewaytest.AliceClaims
	samClaims            = gatewaytest.SamClaims
	csrfField            = gatewaytest.CSRFField
	impersonationHeaders = gatewaytest.ImpersonationHeaders
	hostile              = gatewaytest.Hostile()
)

const (
	loginCookie        = gatewaytest.LoginCookie
	testConfig         = gatewaytest.Config
	loginOIDCConfig    = gatewaytest.LoginOIDCConfig
	loginSessionConfig = gatewaytest.LoginSessionConfig
)
