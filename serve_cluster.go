package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"

	"securechat/chatcluster"
	"securechat/cluster"
)

// clusterFlags are the serve flags that join a server to others serving
// the same chat (chatcluster); without --cluster they do nothing.
func clusterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cluster", Usage: "serve one chat with other servers through NATS JetStream at `URLS`, comma-separated nats://HOST:PORT or tls://HOST:PORT (default: this server alone)", EnvVars: []string{"SECURECHAT_CLUSTER"}},
		&cli.StringFlag{Name: "cluster-creds", Usage: "NATS credentials `FILE` (user JWT and NKey seed; mode 0600)", EnvVars: []string{"SECURECHAT_CLUSTER_CREDS"}},
		&cli.StringFlag{Name: "cluster-nkey", Usage: "NATS NKey seed `FILE` (mode 0600), instead of --cluster-creds", EnvVars: []string{"SECURECHAT_CLUSTER_NKEY"}},
		&cli.StringFlag{Name: "cluster-ca", Usage: "CA certificates `FILE` that verify the NATS servers; turns TLS on", EnvVars: []string{"SECURECHAT_CLUSTER_CA"}},
		&cli.StringFlag{Name: "cluster-cert", Usage: "client certificate `FILE` for NATS servers that verify clients", EnvVars: []string{"SECURECHAT_CLUSTER_CERT"}},
		&cli.StringFlag{Name: "cluster-key", Usage: "private key `FILE` of --cluster-cert (mode 0600)", EnvVars: []string{"SECURECHAT_CLUSTER_KEY"}},
		&cli.BoolFlag{Name: "cluster-insecure", Usage: "allow a NATS link without TLS or credentials off loopback (messages cross the network in the clear)", EnvVars: []string{"SECURECHAT_CLUSTER_INSECURE"}},
		&cli.IntFlag{Name: "cluster-replicas", Value: 1, Usage: "NATS servers that keep each message: 1 for one NATS server, 3 for a three-server NATS cluster", EnvVars: []string{"SECURECHAT_CLUSTER_REPLICAS"}},
		&cli.StringFlag{Name: "node", Usage: "this server's `NAME` in the cluster, unique among its servers (default: the host name)", EnvVars: []string{"SECURECHAT_NODE"}},
	}
}

// clusterLink is the NATS link the flags describe.
func clusterLink(c *cli.Context, log *slog.Logger) (cluster.Options, error) {
	if n := c.Int("cluster-replicas"); n < 1 || n > 5 {
		return cluster.Options{}, usageError("--cluster-replicas %d: want 1 to 5 (1 for one NATS server, 3 for three)", n)
	}
	return cluster.Options{
		Name:         c.String("node"),
		CredsFile:    c.String("cluster-creds"),
		NKeySeedFile: c.String("cluster-nkey"),
		CAFile:       c.String("cluster-ca"),
		CertFile:     c.String("cluster-cert"),
		KeyFile:      c.String("cluster-key"),
		Insecure:     c.Bool("cluster-insecure"),
		Logger:       log,
	}, nil
}

// linkError gives a refused link the flags that fix it.
func linkError(err error) error {
	if errors.Is(err, cluster.ErrInsecureLink) {
		return withCode(exitError, err, "give --cluster-ca and --cluster-creds (or --cluster-nkey), or --cluster-insecure on a network you trust")
	}
	return withCode(exitError, err, "")
}

// joinCluster joins the cluster --cluster names; nil, nil without it.
func joinCluster(ctx context.Context, c *cli.Context, log *slog.Logger) (*chatcluster.Node, error) {
	urls := c.String("cluster")
	if urls == "" {
		return nil, nil
	}
	link, err := clusterLink(c, log)
	if err != nil {
		return nil, err
	}
	node, err := chatcluster.Join(ctx, urls, chatcluster.Config{Link: link, Replicas: c.Int("cluster-replicas")})
	if err != nil {
		return nil, linkError(err)
	}
	log.Info("joined the cluster", "node", node.Name(), "replicas", c.Int("cluster-replicas"))
	return node, nil
}

// checkCluster is serve --check's look at the cluster flags: every check
// of the link but connecting (the NATS servers may not be up yet).
func checkCluster(c *cli.Context) (string, error) {
	urls := c.String("cluster")
	if urls == "" {
		return "cluster: none; this server alone", nil
	}
	link, err := clusterLink(c, nil)
	if err != nil {
		return "", err
	}
	if err := cluster.CheckLink(urls, &link); err != nil {
		return "", linkError(err)
	}
	// Not the addresses themselves: one may hold a NATS password.
	n := 0
	for u := range strings.SplitSeq(urls, ",") {
		if strings.TrimSpace(u) != "" {
			n++
		}
	}
	return fmt.Sprintf("cluster: link to %d NATS server(s) OK (not connected), %d replica(s)", n, c.Int("cluster-replicas")), nil
}
