"""Kubernetes pieces of the lab that are not the API server (that is the real kube-apiserver, run by
`maaslab.controlplane`):

`client` KubeClient, the stdlib client of the lab's KServe stand-in and orchestrator;
`faults` the `kube` fault switches and counters, applied by the control plane's fault proxy.
"""
