package serve

import (
	"testing"
	"time"
)

func TestHubConfig(t *testing.T) {
	l := HubLimits{PingInterval: 5 * time.Second, HelloTimeout: 7 * time.Second, MaxSessions: 10, HistoryRoomBytes: 1 << 20, HistoryBytes: 64 << 20}
	c := l.hubConfig(nil, "", nil)
	if c.PingInterval != 5*time.Second || c.PingTimeout != 5*time.Second || c.HelloTimeout != 7*time.Second {
		t.Errorf("ping %v/%v, hello %v; want 5s/5s, 7s", c.PingInterval, c.PingTimeout, c.HelloTimeout)
	}
	if c.MaxSessionsPerUser != 10 || c.HistoryRoomBytes != 1<<20 || c.HistoryBytes != 64<<20 {
		t.Errorf("sessions %d, room history %d, history %d", c.MaxSessionsPerUser, c.HistoryRoomBytes, c.HistoryBytes)
	}
	// 0 means no limit on the command line, which the hub spells negative.
	c = HubLimits{}.hubConfig(nil, "", nil)
	if c.MaxSessionsPerUser >= 0 || c.HistoryRoomBytes >= 0 || c.HistoryBytes >= 0 {
		t.Errorf("0 must mean no limit: sessions %d, room history %d, history %d", c.MaxSessionsPerUser, c.HistoryRoomBytes, c.HistoryBytes)
	}
}

func TestChatStoreOptions(t *testing.T) {
	o, err := Config{Store: "sqlite"}.chatStoreOptions(nil)
	if err != nil || o.Retention != 0 || o.MaxPerRoom != 0 {
		t.Errorf("defaults: %+v, %v; want keep everything", o, err)
	}
	o, err = Config{Store: "memory", HistoryRetained: 720 * time.Hour, HistoryMax: 5000}.chatStoreOptions(nil)
	if err != nil || o.Retention != 720*time.Hour || o.MaxPerRoom != 5000 {
		t.Errorf("retention 720h, max 5000: %+v, %v", o, err)
	}
	for _, c := range []Config{{Store: "sqlite", HistoryMax: -1}, {Store: "sqlite", HistoryRetained: -time.Hour}, {Store: "disk"}} {
		if _, err := c.chatStoreOptions(nil); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
