package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"securechat/chatcluster"
	"securechat/cluster"
	"securechat/internal/cmderr"
)

// Cluster says how this server joins others serving the same chat; the
// zero value (no URLs) is a server alone.
type Cluster struct {
	// URLs are the NATS servers, comma-separated.
	URLs                string
	CredsFile, NKeySeed string
	CAFile, CertFile    string
	KeyFile             string
	Insecure            bool
	Replicas            int
	Node                string
}

// link is the NATS link the settings describe.
func (cl Cluster) link(log *slog.Logger) (cluster.Options, error) {
	if n := cl.Replicas; n < 1 || n > 5 {
		return cluster.Options{}, cmderr.Usagef("--cluster-replicas %d: want 1 to 5 (1 for one NATS server, 3 for three)", n)
	}
	return cluster.Options{
		Name:         cl.Node,
		CredsFile:    cl.CredsFile,
		NKeySeedFile: cl.NKeySeed,
		CAFile:       cl.CAFile,
		CertFile:     cl.CertFile,
		KeyFile:      cl.KeyFile,
		Insecure:     cl.Insecure,
		Logger:       log,
	}, nil
}

// linkError gives a refused link the flags that fix it.
func linkError(err error) error {
	if errors.Is(err, cluster.ErrInsecureLink) {
		return cmderr.WithHint(err, "give --cluster-ca and --cluster-creds (or --cluster-nkey), or --cluster-insecure on a network you trust")
	}
	return err
}

// joinCluster joins the cluster cl names; nil, nil without one.
func joinCluster(ctx context.Context, cl Cluster, log *slog.Logger) (*chatcluster.Node, error) {
	if cl.URLs == "" {
		return nil, nil
	}
	link, err := cl.link(log)
	if err != nil {
		return nil, err
	}
	node, err := chatcluster.Join(ctx, cl.URLs, chatcluster.Config{Link: link, Replicas: cl.Replicas})
	if err != nil {
		return nil, linkError(err)
	}
	log.Info("joined the cluster", "node", node.Name(), "replicas", cl.Replicas)
	return node, nil
}

// checkCluster is serve --check's look at the cluster settings: every
// check of the link but connecting (the NATS servers may not be up yet).
func checkCluster(cl Cluster) (string, error) {
	if cl.URLs == "" {
		return "cluster: none; this server alone", nil
	}
	link, err := cl.link(nil)
	if err != nil {
		return "", err
	}
	if err := cluster.CheckLink(cl.URLs, &link); err != nil {
		return "", linkError(err)
	}
	// Not the addresses themselves: one may hold a NATS password.
	n := 0
	for u := range strings.SplitSeq(cl.URLs, ",") {
		if strings.TrimSpace(u) != "" {
			n++
		}
	}
	return fmt.Sprintf("cluster: link to %d NATS server(s) OK (not connected), %d replica(s)", n, cl.Replicas), nil
}
