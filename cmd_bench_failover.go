package main

import (
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"securechat/bench"
)

func benchFailoverCommand() *cli.Command {
	return &cli.Command{
		Name:  "failover",
		Usage: "kill -9 serve nodes in turn: time until their clients chat again",
		Description: `Starts --nodes real serve processes on loopback that share one host key and
one creds file, and --clients script clients (the connect client with its
reconnect loop), each given every node's address, starting with a different
node. Then --kills times it kills a node with SIGKILL, the nodes in turn:
right after the kill every client sends a line, and a client of the killed
node sends it again once it has reconnected to another node. A client's
time runs from the kill until another client reads its line; a kill's time
is its slowest client's. The killed node is restarted on its address
before the next kill. The nodes are independent unless --serve-arg gives
them a cluster (--serve-arg --cluster --serve-arg nats://127.0.0.1:4222
--serve-arg --node --serve-arg n{node}; {node} is the node's number).`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "transport", Value: "tcp", Usage: "transport: tcp|quic"},
			&cli.StringFlag{Name: "kex", Usage: "key exchange groups, comma-separated (default: the client default)"},
			&cli.IntFlag{Name: "nodes", Value: 2, Usage: "serve processes"},
			&cli.IntFlag{Name: "clients", Value: 12, Usage: "script clients, spread over the nodes"},
			&cli.IntFlag{Name: "kills", Value: 10, Usage: "nodes killed, one after another"},
			&cli.StringSliceFlag{Name: "serve-arg", Usage: "one more `ARG` for every serve node, repeatable; {node} becomes the node's number"},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "bound on the wait for the clients of one kill"},
		}, benchOutputFlags()...),
		Action: func(c *cli.Context) error {
			tr, err := benchTransport(c.String("transport"))
			if err != nil {
				return err
			}
			groups, err := parseGroups(c.String("kex"))
			if err != nil {
				return err
			}
			if n := c.Int("nodes"); n < 2 || n > bench.MaxFailoverNodes {
				return usageError("--nodes %d: want 2 to %d", n, bench.MaxFailoverNodes)
			}
			if n := c.Int("clients"); n < 2 || n > bench.MaxAccounts {
				return usageError("--clients %d: want 2 to %d", n, bench.MaxAccounts)
			}
			if n := c.Int("kills"); n < 1 || n > bench.MaxFailoverKills {
				return usageError("--kills %d: want 1 to %d", n, bench.MaxFailoverKills)
			}
			if d := c.Duration("timeout"); d <= 0 || d > bench.MaxDuration {
				return usageError("--timeout %s: want up to %s", d, bench.MaxDuration)
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			s, err := benchOutput(c)
			if err != nil {
				return err
			}
			rep, err := bench.RunFailover(c.Context, bench.FailoverConfig{
				Command: serveArgv(exe), Transport: tr, Groups: groups, Nodes: c.Int("nodes"),
				Clients: c.Int("clients"), Kills: c.Int("kills"), ServeArgs: c.StringSlice("serve-arg"),
				Timeout: c.Duration("timeout"), Stderr: c.App.ErrWriter, Progress: s.Progress,
			})
			if err != nil {
				s.Stop()
				return err
			}
			if err := s.Finish("failover", rep); err != nil {
				return err
			}
			return rep.Err()
		},
	}
}
