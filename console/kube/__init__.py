"""The Kubernetes connection: contexts, nodes, failing pods and a watch.

Every call blocks on the API server, so the UI runs them in thread workers.
The `kubernetes` client library costs about half a second to import; only
console/kube/client.py imports it, and only when a client is first built, so
importing this package stays cheap.

- config.py reads kubeconfig files and lists or picks contexts;
- client.py talks to the API server and words its errors;
- nodes.py turns Node objects into `ClusterNode`;
- pods.py finds failing pods, with their events, grouped by node, and
  matches them against the diagnose signatures;
- watch.py streams pod and event changes;
- targets.py merges cluster nodes into the fleet as SSH targets.
"""
