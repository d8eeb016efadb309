package cliargs

import "testing"

func TestClosestName(t *testing.T) {
	names := []string{"serve", "connect", "user", "keygen", "known-hosts"}
	for typed, want := range map[string]string{
		"serv": "serve", "conect": "connect", "usr": "user", "known": "known-hosts", "xyzzy": "", "bench": "",
	} {
		if got := closestName(typed, names); got != want {
			t.Errorf("closestName(%q) = %q, want %q", typed, got, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "abc", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"conect", "connect", 1}} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
