// Package deploy holds what an operator deploys beside the gateway: the
// Grafana dashboard (grafana/portero.json) and the Prometheus alert rules
// (prometheus/alerts.yml, with promtool unit tests in alerts_test.yml). Its
// tests check both against the metrics the gateway exports.
package deploy
