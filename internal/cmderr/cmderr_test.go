package cmderr

import (
	"errors"
	"fmt"
	"testing"
)

func TestMarks(t *testing.T) {
	err := fmt.Errorf("serve: %w", Usagef("--listen %q: want HOST:PORT", "x"))
	if !IsUsage(err) || Hint(err) != "" || err.Error() != `serve: --listen "x": want HOST:PORT` {
		t.Errorf("wrapped usage mistake: usage %v, hint %q, text %q", IsUsage(err), Hint(err), err)
	}
	cause := errors.New("creds.txt: no such file")
	err = WithHint(cause, "create it")
	if IsUsage(err) || Hint(err) != "create it" || !errors.Is(err, cause) {
		t.Errorf("hinted error: usage %v, hint %q, is cause %v", IsUsage(err), Hint(err), errors.Is(err, cause))
	}
	err = UsageHint(cause, "names match [a-z]+")
	if !IsUsage(err) || Hint(err) != "names match [a-z]+" {
		t.Errorf("usage mistake with a hint: usage %v, hint %q", IsUsage(err), Hint(err))
	}
	if WithHint(nil, "x") != nil || UsageHint(nil, "x") != nil {
		t.Error("marking no error made one")
	}
	if IsUsage(cause) || Hint(cause) != "" {
		t.Error("an unmarked error reads as marked")
	}
}
