package main

import (
	"github.com/urfave/cli/v2"

	"securechat/internal/serve"
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

// clusterConfig reads the cluster flags.
func clusterConfig(c *cli.Context) serve.Cluster {
	return serve.Cluster{
		URLs: c.String("cluster"), CredsFile: c.String("cluster-creds"), NKeySeed: c.String("cluster-nkey"),
		CAFile: c.String("cluster-ca"), CertFile: c.String("cluster-cert"), KeyFile: c.String("cluster-key"),
		Insecure: c.Bool("cluster-insecure"), Replicas: c.Int("cluster-replicas"), Node: c.String("node"),
	}
}
