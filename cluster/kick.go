package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// kickPrefix, followed by a node's name as a subject token, is the subject
// on which that node takes kicks. Kicks are core NATS requests, not log
// entries: a kick ends sessions that exist now, and a node that is down
// has none to end, so there is nothing to store or to replay.
const kickPrefix = "securechat.kick."

// Kick asks a node to end every session of User there, as an admin's
// /kick does on the admin's own node.
type Kick struct {
	User   string `json:"user"`
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
}

type kickAnswer struct {
	Sessions int    `json:"sessions"`
	Error    string `json:"error,omitempty"`
}

// KickServer takes the kicks addressed to this node; see [Conn.ServeKicks].
type KickServer struct{ sub *nats.Subscription }

// ServeKicks calls end for every kick another node addresses to this one,
// and answers with the number of sessions end reports it ended. end runs
// on a goroutine of the subscription, one kick at a time.
func (c *Conn) ServeKicks(end func(Kick) int) (*KickServer, error) {
	sub, err := c.nc.Subscribe(kickPrefix+token(c.name), func(m *nats.Msg) {
		var k Kick
		var a kickAnswer
		if err := json.Unmarshal(m.Data, &k); err != nil || k.User == "" {
			a.Error = "undecodable kick"
		} else {
			a.Sessions = end(k)
		}
		data, err := json.Marshal(a)
		if err != nil {
			return
		}
		if err := m.Respond(data); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			c.log.Warn("cluster: answering a kick failed", "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: take kicks: %w", err)
	}
	return &KickServer{sub: sub}, nil
}

// Stop stops taking kicks.
func (ks *KickServer) Stop() { _ = ks.sub.Unsubscribe() }

// Kick asks node to end k.User's sessions there and returns how many it
// ended. It waits for the node's answer, up to ctx's deadline or the
// connection's timeout.
func (c *Conn) Kick(ctx context.Context, node string, k Kick) (int, error) {
	data, err := json.Marshal(k)
	if err != nil {
		return 0, fmt.Errorf("cluster: %w", err)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	msg, err := c.nc.RequestWithContext(ctx, kickPrefix+token(node), data)
	if err != nil {
		return 0, fmt.Errorf("cluster: kick on %s: %w", node, err)
	}
	var a kickAnswer
	if err := json.Unmarshal(msg.Data, &a); err != nil {
		return 0, fmt.Errorf("cluster: kick on %s: undecodable answer: %w", node, err)
	}
	if a.Error != "" {
		return 0, fmt.Errorf("cluster: kick on %s: %s", node, a.Error)
	}
	return a.Sessions, nil
}
