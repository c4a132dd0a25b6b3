package control_test

import "github.com/portero-gateway/portero/internal/gatewaytest"

// Short names for the whole-gateway test harness (internal/gatewaytest).
type (
	harness     = gatewaytest.Harness
	harnessOpts = gatewaytest.Options
)

var (
	newHarness           = gatewaytest.New
	newHarnessWith       = gatewaytest.NewWith
	newLoginHarness      = gatewaytest.NewLogin
	newMasterHarness     = gatewaytest.NewMaster
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
