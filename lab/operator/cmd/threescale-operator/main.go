// Command threescale-operator runs the capabilities controllers of the 3scale
// operator (github.com/3scale/3scale-operator, built from its Go module) against
// the lab's Kubernetes API server. Upstream's main also starts the APIManager,
// backup/restore and web-console controllers, which need OpenShift; this one
// starts only the controllers for the custom resources a tenant's admin applies.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	apimachineryruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	appsv1alpha1 "github.com/3scale/3scale-operator/apis/apps/v1alpha1"
	capabilitiesv1alpha1 "github.com/3scale/3scale-operator/apis/capabilities/v1alpha1"
	capabilitiesv1beta1 "github.com/3scale/3scale-operator/apis/capabilities/v1beta1"
	capabilities "github.com/3scale/3scale-operator/controllers/capabilities"
	"github.com/3scale/3scale-operator/pkg/reconcilers"
	"github.com/3scale/3scale-operator/version"
)

type controller interface {
	SetupWithManager(ctrl.Manager) error
}

func main() {
	var only string
	var probeAddr string
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.StringVar(&only, "controllers", "", "comma-separated controllers to start (default: all of them)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", "0", "address of /healthz and /readyz (0: off)")
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")
	log.Info("3scale operator capabilities controllers", "operatorVersion", version.Version, "go", runtime.Version())

	// As upstream's main: OpenAPI documents are validated without format checks.
	openapi3.SchemaFormatValidationDisabled = true

	scheme := apimachineryruntime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(appsv1alpha1.AddToScheme(scheme))
	utilruntime.Must(capabilitiesv1alpha1.AddToScheme(scheme))
	utilruntime.Must(capabilitiesv1beta1.AddToScheme(scheme))

	namespace, found := os.LookupEnv("WATCH_NAMESPACE")
	if !found {
		log.Error(fmt.Errorf("WATCH_NAMESPACE must be set"), "no namespace to watch")
		os.Exit(1)
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Namespace:              namespace,
		Scheme:                 scheme,
		MetricsBindAddress:     "0",
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         false,
	})
	if err != nil {
		log.Error(err, "unable to start manager")
		os.Exit(1)
	}
	if probeAddr != "0" {
		utilruntime.Must(mgr.AddHealthzCheck("ping", func(_ *http.Request) error { return nil }))
		utilruntime.Must(mgr.AddReadyzCheck("ping", func(_ *http.Request) error { return nil }))
	}

	base := func(name string) *reconcilers.BaseReconciler {
		dc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
		utilruntime.Must(err)
		return reconcilers.NewBaseReconciler(context.Background(), mgr.GetClient(), mgr.GetScheme(),
			mgr.GetAPIReader(), ctrl.Log.WithName("controllers").WithName(name), dc,
			mgr.GetEventRecorderFor(name))
	}
	all := []struct {
		name string
		make func(*reconcilers.BaseReconciler) controller
	}{
		{"Tenant", func(b *reconcilers.BaseReconciler) controller { return &capabilities.TenantReconciler{BaseReconciler: b} }},
		{"Backend", func(b *reconcilers.BaseReconciler) controller { return &capabilities.BackendReconciler{BaseReconciler: b} }},
		{"Product", func(b *reconcilers.BaseReconciler) controller { return &capabilities.ProductReconciler{BaseReconciler: b} }},
		{"OpenAPI", func(b *reconcilers.BaseReconciler) controller { return &capabilities.OpenAPIReconciler{BaseReconciler: b} }},
		{"ActiveDoc", func(b *reconcilers.BaseReconciler) controller { return &capabilities.ActiveDocReconciler{BaseReconciler: b} }},
		{"CustomPolicyDefinition", func(b *reconcilers.BaseReconciler) controller {
			return &capabilities.CustomPolicyDefinitionReconciler{BaseReconciler: b}
		}},
		{"DeveloperAccount", func(b *reconcilers.BaseReconciler) controller {
			return &capabilities.DeveloperAccountReconciler{BaseReconciler: b}
		}},
		{"DeveloperUser", func(b *reconcilers.BaseReconciler) controller {
			return &capabilities.DeveloperUserReconciler{BaseReconciler: b}
		}},
		{"ProxyConfigPromote", func(b *reconcilers.BaseReconciler) controller {
			return &capabilities.ProxyConfigPromoteReconciler{BaseReconciler: b}
		}},
		{"Application", func(b *reconcilers.BaseReconciler) controller {
			return &capabilities.ApplicationReconciler{BaseReconciler: b}
		}},
	}
	wanted := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			wanted[n] = true
		}
	}
	for _, c := range all {
		if len(wanted) > 0 && !wanted[c.name] {
			continue
		}
		if err := c.make(base(c.name)).SetupWithManager(mgr); err != nil {
			log.Error(err, "unable to create controller", "controller", c.name)
			os.Exit(1)
		}
		delete(wanted, c.name)
	}
	for n := range wanted {
		log.Error(fmt.Errorf("unknown controller %q", n), "bad --controllers")
		os.Exit(2)
	}
	log.Info("starting manager", "namespace", namespace)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "problem running manager")
		os.Exit(1)
	}
}
