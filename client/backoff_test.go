package client

import (
	"context"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	s := time.Second
	tests := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{0, 0, 1 * s}, {0, 1, 1 * s},
		{1, 0, 1 * s}, {1, 0.5, 1500 * time.Millisecond}, {1, 1, 2 * s},
		{2, 0, 2 * s}, {2, 1, 4 * s},
		{5, 0, 16 * s}, {5, 1, 32 * s},
		{6, 0, 30 * s}, {6, 1, 60 * s},
		{1000, 0, 30 * s}, {1000, 1, 60 * s},
		{-3, 1, 1 * s},                // negative counts as the first
		{3, -5, 4 * s}, {3, 7, 8 * s}, // r is clamped to [0, 1]
	}
	for _, tt := range tests {
		if got := backoffDelay(tt.attempt, tt.r); got != tt.want {
			t.Errorf("backoffDelay(%d, %v) = %v, want %v", tt.attempt, tt.r, got, tt.want)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	for _, r := range []float64{0, 0.1, 0.5, 0.999, 1} {
		prev := time.Duration(0)
		for attempt := range 80 {
			d := backoffDelay(attempt, r)
			if d < backoffMin || d > backoffMax {
				t.Fatalf("backoffDelay(%d, %v) = %v, outside [%v, %v]", attempt, r, d, backoffMin, backoffMax)
			}
			if d < prev {
				t.Fatalf("backoffDelay(%d, %v) = %v shrank from %v", attempt, r, d, prev)
			}
			prev = d
		}
		if prev < backoffMax/2 {
			t.Errorf("r=%v: never reached the capped range, last %v", r, prev)
		}
	}
}

func TestReconnectBackoff(t *testing.T) {
	b := reconnectBackoff{rand: func() float64 { return 0.5 }}
	ms := time.Millisecond
	want := []time.Duration{1000 * ms, 1500 * ms, 3000 * ms, 6000 * ms, 12000 * ms, 24000 * ms, 45000 * ms, 45000 * ms}
	for i, w := range want {
		if got := b.Next(); got != w {
			t.Errorf("attempt %d: %v, want %v", i, got, w)
		}
	}
	b.Reset()
	if got := b.Next(); got != time.Second {
		t.Errorf("after Reset: %v, want 1s", got)
	}

	// A seeded source stays within each step's upper half and spreads.
	rng := rand.New(rand.NewPCG(1, 2))
	b = reconnectBackoff{rand: rng.Float64}
	seen := make(map[time.Duration]bool)
	for range 20 {
		b.Reset()
		for attempt := range 10 {
			d := b.Next()
			step := min(backoffMin<<attempt, backoffMax)
			if d < max(step/2, backoffMin) || d > step {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, step/2, step)
			}
			if attempt == 8 {
				seen[d] = true
			}
		}
	}
	if len(seen) < 10 {
		t.Errorf("20 runs gave only %d distinct capped delays: no jitter?", len(seen))
	}

	// The zero value works with the default source.
	var z reconnectBackoff
	if d := z.Next(); d != time.Second {
		t.Errorf("zero value first delay %v, want 1s", d)
	}
}

func TestSleepCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := sleepCtx(t.Context(), 5*time.Second); err != nil {
			t.Fatalf("sleepCtx: %v", err)
		}
		if got := time.Since(start); got != 5*time.Second {
			t.Errorf("slept %v, want 5s", got)
		}

		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			time.Sleep(2 * time.Second)
			cancel()
		}()
		start = time.Now()
		if err := sleepCtx(ctx, time.Minute); err != context.Canceled {
			t.Fatalf("cancelled sleepCtx: %v, want context.Canceled", err)
		}
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("cancelled after %v, want 2s", got)
		}

		start = time.Now()
		if err := sleepCtx(ctx, time.Minute); err != context.Canceled || time.Since(start) != 0 {
			t.Errorf("already cancelled: %v after %v, want context.Canceled at once", err, time.Since(start))
		}
	})
}
