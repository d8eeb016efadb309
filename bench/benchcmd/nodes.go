package benchcmd

import (
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"securechat/bench"
	"securechat/internal/cmderr"
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
them a cluster: --nats 3 starts three routed nats-server processes for
them, or give your own (--serve-arg --cluster --serve-arg
nats://127.0.0.1:4222 --serve-arg --node --serve-arg n{node}; {node} is
the node's number).`,
		Flags: append(append(clientTransportFlags(),
			&cli.IntFlag{Name: "nodes", Value: 2, Usage: "serve processes"},
			&cli.IntFlag{Name: "clients", Value: 12, Usage: "script clients, spread over the nodes"},
			&cli.IntFlag{Name: "kills", Value: 10, Usage: "nodes killed, one after another"},
			&cli.StringSliceFlag{Name: "serve-arg", Usage: "one more `ARG` for every serve node, repeatable; {node} becomes the node's number"},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "bound on the wait for the clients of one kill"},
		), append(benchNATSFlags(), benchOutputFlags()...)...),
		Action: func(c *cli.Context) error {
			tr, groups, err := transportAndGroups(c)
			if err != nil {
				return err
			}
			if n := c.Int("nodes"); n < 2 || n > bench.MaxFailoverNodes {
				return cmderr.Usagef("--nodes %d: want 2 to %d", n, bench.MaxFailoverNodes)
			}
			if n := c.Int("clients"); n < 2 || n > bench.MaxAccounts {
				return cmderr.Usagef("--clients %d: want 2 to %d", n, bench.MaxAccounts)
			}
			if n := c.Int("kills"); n < 1 || n > bench.MaxFailoverKills {
				return cmderr.Usagef("--kills %d: want 1 to %d", n, bench.MaxFailoverKills)
			}
			if d := c.Duration("timeout"); d <= 0 || d > bench.MaxDuration {
				return cmderr.Usagef("--timeout %s: want up to %s", d, bench.MaxDuration)
			}
			run, err := startNodesRun(c)
			if err != nil {
				return err
			}
			defer run.nats.Close()
			s := run.out
			rep, err := bench.RunFailover(c.Context, bench.FailoverConfig{
				Command: run.serve, Transport: tr, Groups: groups, Nodes: c.Int("nodes"),
				Clients: c.Int("clients"), Kills: c.Int("kills"), ServeArgs: run.serveArgs,
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

func benchClusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "fan-out over several serve nodes of one cluster",
		Description: `Starts --nodes real serve processes on loopback that share one host key, one
creds file and the --serve-arg arguments ({node} becomes the node's
number), spreads --clients sessions over them (client i on node i mod
--nodes), and runs the fan-out of 'bench fanout' in #general across all of
them: every member must get every message, whichever node its sender is
on. More than one node needs the nodes to share a cluster: --nats 3 starts
three routed nats-server processes (--nats-server, or
$SECURECHAT_NATS_SERVER) and joins the nodes to them, and the report then
gives the CPU of the nodes and of NATS per delivery; or give your own:
  --serve-arg --cluster --serve-arg nats://127.0.0.1:4222 \
  --serve-arg --node --serve-arg n{node}`,
		Flags: append(append(clientTransportFlags(),
			&cli.IntFlag{Name: "nodes", Value: 3, Usage: "serve processes"},
			&cli.StringSliceFlag{Name: "serve-arg", Usage: "one more `ARG` for every serve node, repeatable; {node} becomes the node's number"},
			&cli.IntFlag{Name: "clients", Value: 1000, Usage: "sessions in the room, spread over the nodes"},
			&cli.IntFlag{Name: "senders", Value: 10, Usage: "of which send"},
			&cli.Float64Flag{Name: "rate", Value: 10, Usage: "messages per second per sender (0: as fast as the window allows)"},
			&cli.DurationFlag{Name: "duration", Value: 20 * time.Second, Usage: "sending time"},
			&cli.IntFlag{Name: "connect-concurrency", Value: 64, Usage: "clients connecting at once"},
		), append(benchNATSFlags(), benchOutputFlags()...)...),
		Action: func(c *cli.Context) error {
			tr, groups, err := transportAndGroups(c)
			if err != nil {
				return err
			}
			cfg := bench.FanoutConfig{Clients: c.Int("clients"), Senders: c.Int("senders"), Rate: c.Float64("rate"),
				Duration: c.Duration("duration"), ConnectConcurrency: c.Int("connect-concurrency")}
			if err := cfg.Check(); err != nil {
				return err
			}
			n := c.Int("nodes")
			if n < 1 || n > bench.MaxNodes {
				return cmderr.Usagef("--nodes %d: want 1 to %d", n, bench.MaxNodes)
			}
			if n > 1 && c.Int("nats") == 0 && !slices.Contains(c.StringSlice("serve-arg"), "--cluster") {
				// Independent nodes never see each other's messages: the
				// run would wait a minute for its settle marker and fail.
				return cmderr.Usagef("--nodes %d needs the nodes in one cluster: --nats N, or --serve-arg --cluster --serve-arg URL", n)
			}
			run, err := startNodesRun(c)
			if err != nil {
				return err
			}
			defer run.nats.Close()
			s := run.out
			cfg.Progress = s.Progress
			ns, err := bench.StartNodes(c.Context, bench.NodesConfig{Command: run.serve, Transport: tr, Groups: groups,
				Nodes: n, Accounts: min(cfg.Clients, bench.MaxAccounts), ServeArgs: run.serveArgs,
				Stderr: c.App.ErrWriter})
			if err != nil {
				s.Stop()
				return err
			}
			cfg.Processes = []bench.ProcessGroup{{Name: fmt.Sprintf("%d serve node(s)", n), PIDs: ns.PIDs()}}
			if pids := run.nats.PIDs(); len(pids) > 0 {
				cfg.Processes = append(cfg.Processes, bench.ProcessGroup{Name: fmt.Sprintf("%d NATS server(s)", len(pids)), PIDs: pids})
			}
			rep, err := bench.RunFanout(c.Context, &ns.Target, cfg)
			if cerr := ns.Close(); err == nil {
				err = cerr
			}
			if rep == nil {
				s.Stop()
				return err
			}
			if ferr := s.Finish("cluster", rep); ferr != nil {
				return ferr
			}
			if err != nil {
				return err
			}
			return rep.Err()
		},
	}
}

// benchNATSFlags let bench cluster and bench failover start the NATS
// servers their nodes share.
func benchNATSFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "nats", Usage: "start `N` NATS servers (a routed cluster when more than one) and put the nodes in one cluster on them, every message kept by all N; 0: none"},
		&cli.StringFlag{Name: "nats-server", EnvVars: []string{"SECURECHAT_NATS_SERVER"}, Usage: "the nats-server `BINARY` --nats runs"},
	}
}

// nodesRun is what failover and cluster start before their serve nodes:
// the serve command, the NATS servers of --nats (nil without), the serve
// nodes' arguments, and the output.
type nodesRun struct {
	serve     []string
	nats      *bench.NATS
	serveArgs []string
	out       *bench.Output
}

func startNodesRun(c *cli.Context) (*nodesRun, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	nats, serveArgs, err := startBenchNATS(c)
	if err != nil {
		return nil, err
	}
	out, err := benchOutput(c)
	if err != nil {
		nats.Close()
		return nil, err
	}
	return &nodesRun{serve: ServeArgv(exe), nats: nats, serveArgs: serveArgs, out: out}, nil
}

// startBenchNATS starts the --nats servers, if any, and returns them (nil
// without --nats; closing nil is a no-op) and every node's serve
// arguments: --serve-arg's, after those that join the cluster.
func startBenchNATS(c *cli.Context) (*bench.NATS, []string, error) {
	args := c.StringSlice("serve-arg")
	n := c.Int("nats")
	if n == 0 {
		return nil, args, nil
	}
	if n < 0 || n > bench.MaxNATSServers {
		return nil, nil, cmderr.Usagef("--nats %d: want 0 to %d", n, bench.MaxNATSServers)
	}
	if slices.Contains(args, "--cluster") {
		return nil, nil, cmderr.Usagef("--nats starts the cluster the nodes join: drop --serve-arg --cluster")
	}
	nats, err := bench.StartNATS(c.Context, bench.NATSConfig{Binary: c.String("nats-server"), Servers: n})
	if err != nil {
		return nil, nil, err
	}
	return nats, append(nats.ServeArgs(), args...), nil
}
