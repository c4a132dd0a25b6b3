package config

import (
	"slices"
	"strings"
	"testing"
)

func TestDecisionInputsOffByDefault(t *testing.T) {
	cfg, err := Parse("gateway.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Log.DecisionInputs; d.Enabled || d.Fraction() != 0 || d.MaskPaths != nil {
		t.Fatalf("decision inputs: %+v", d)
	}
}

func TestDecisionInputsSampleAndMasks(t *testing.T) {
	cfg, err := Parse("gateway.yaml", []byte(minimal+`log:
  decision_inputs:
    enabled: true
    sample: 0.25
    mask: [identity.claims.phone, request.headers.X-Api-Key, "request.body.*.iban"]
`))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Log.DecisionInputs
	if d.Fraction() != 0.25 {
		t.Errorf("fraction %v", d.Fraction())
	}
	want := [][]string{{"identity", "claims", "phone"}, {"request", "headers", "x-api-key"}, {"request", "body", "*", "iban"}}
	if !slices.EqualFunc(d.MaskPaths, want, slices.Equal) {
		t.Errorf("mask paths %q, want %q", d.MaskPaths, want)
	}
	cfg, err = Parse("gateway.yaml", []byte(minimal+"log:\n  decision_inputs: {enabled: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f := cfg.Log.DecisionInputs.Fraction(); f != 1 {
		t.Errorf("absent sample: fraction %v, want 1", f)
	}
}

func TestDecisionInputsErrorsNameTheKey(t *testing.T) {
	bad := map[string]string{
		"log:\n  decision_inputs: {enabled: true, sample: 1.5}\n":   "gateway.yaml:9:44: log.decision_inputs.sample: must be between 0 and 1",
		"log:\n  decision_inputs: {sample: -0.1}\n":                 "log.decision_inputs.sample: must be between 0 and 1",
		"log:\n  decision_inputs: {sample: NaN}\n":                  "log.decision_inputs.sample: must be between 0 and 1",
		"log:\n  decision_inputs: {sample: half}\n":                 `gateway.yaml:9:29: log.decision_inputs.sample: expected a number such as 0.25, got "half"`,
		"log:\n  decision_inputs:\n    mask: [phone]\n":             `gateway.yaml:10:12: log.decision_inputs.mask[0]: "phone" is not a path into the policy input`,
		"log:\n  decision_inputs:\n    mask: [identity..phone]\n":   `log.decision_inputs.mask[0]: "identity..phone" is not a path`,
		"log:\n  decision_inputs:\n    mask: [ok.x, identity.x]\n":  "log.decision_inputs.mask[0]",
		"log:\n  decision_inputs: {enabled: maybe}\n":               `log.decision_inputs.enabled: expected true or false`,
		"log:\n  level: warn\n  decision_inputs: {enabled: true}\n": "gateway.yaml:10:30: log.decision_inputs.enabled: decision lines are logged at info, so log.level warn records no input",
		"log:\n  decision_inputs: {sampel: 1}\n":                    `log.decision_inputs.sampel: unknown key "sampel"; expected one of: enabled, mask, sample`,
	}
	for extra, want := range bad {
		_, err := Parse("gateway.yaml", []byte(minimal+extra))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", extra, err, want)
		}
	}
}
