package access

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The direct path for the store's lists and maps must give what
// json.Unmarshal gives, for any column text: FuzzFromJSON compares them on
// every input, the seeds covering what the store writes and what it could
// find in a damaged or hand-edited database.
func FuzzFromJSON(f *testing.F) {
	for _, seed := range []string{
		`[]`, `["b1"]`, `["l1","l2"]`, ` [ "a" , "b" ] `, `{}`, `{"reviews":"read","profile_listings":"edit"}`,
		`{"profile_listings":["phone","hours"],"reviews":[]}`, `{"a":"x","a":"y"}`, `{"a":[],"a":["z"]}`,
		`null`, `["a\"b"]`, `["\u003cb\u003e"]`, `["é", "日本"]`, "[\"\xff\"]", "[\"a\x01\"]", `[1]`, `["a",]`,
		`["a"] x`, `[`, `{"a":}`, `{"a":null}`, `{"a":["b",null]}`, `{"a" "b"}`, `"s"`, ``, `[""]`, `{"":""}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		same[[]string](t, s)
		same[map[string]string](t, s)
		same[map[string][]string](t, s)
	})
}

func same[T any](t *testing.T, s string) {
	t.Helper()
	var want T
	_ = json.Unmarshal([]byte(s), &want)
	if got := fromJSON[T](s); !reflect.DeepEqual(got, want) {
		t.Errorf("fromJSON[%T](%q) = %#v, json.Unmarshal gives %#v", want, s, got, want)
	}
}

// The direct path is taken for what the store writes (the fuzz test would
// pass with json.Unmarshal alone): it shares the column's bytes.
func TestFromJSONTakesTheDirectPath(t *testing.T) {
	for _, s := range []string{`["l1","l2"]`, `{"reviews":"read"}`, `{"profile_listings":["phone","hours"]}`} {
		if _, ok := stringList(s); ok != (s[0] == '[') {
			t.Errorf("stringList(%s): ok = %v", s, ok)
		}
	}
	if _, ok := stringMap(`{"reviews":"read"}`); !ok {
		t.Error("stringMap refused what toJSON writes")
	}
	if _, ok := stringListMap(`{"profile_listings":["phone","hours"],"reviews":[]}`); !ok {
		t.Error("stringListMap refused what toJSON writes")
	}
	if got := testing.AllocsPerRun(100, func() { fromJSON[[]string](`["l1","l2"]`) }); got > 1 {
		t.Errorf("a list of two strings took %v allocations, want 1 (the slice)", got)
	}
}
