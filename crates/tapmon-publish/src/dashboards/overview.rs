//! The TAP overview: the ten sections users of the proof of concept know, as data, each panel
//! shown when its group is enabled.

use tapmon_presets::TapGroup;

use super::layout::{About, Layout, count, listing};
use super::{Dashboard, Query};
use crate::promql;

/// A panel of the overview, by kind: its title, what it tells the reader, then its query.
#[derive(Debug, Clone, Copy)]
enum Panel {
    /// A number.
    Stat(&'static str, About, Query),
    /// Horizontal bars, with a legend.
    Bars(&'static str, About, &'static str, &'static str),
    /// A table of series, of a width.
    Table(&'static str, About, u32, &'static str),
}

/// A row of the overview: its title and its panels, each shown when its group is enabled.
struct Section {
    title: &'static str,
    panels: &'static [(TapGroup, Panel)],
}

use Panel::{Bars, Stat, Table};
use Query::Count;
use TapGroup::{
    Accelerators, ApiDescriptors, Cartographer, Carvel, Flux, Knative, Kpack, Scanning,
    ServiceBindings, ServicesToolkit, Tekton,
};

/// The ten sections of the catalogue.
#[rustfmt::skip]
const OVERVIEW: &[Section] = &[
    Section {
        title: "Package installations and repositories",
        panels: &[
            (Carvel, Stat("Package installs failing", count("Carvel PackageInstalls whose last reconcile failed."), Count(promql::PACKAGE_INSTALL_FAILING))),
            (Carvel, Stat("Package installs reconciled", count("Carvel PackageInstalls whose last reconcile succeeded."), Count(r#"carvel_packageinstall_info{S type="ReconcileSucceeded", status="True"}"#))),
            (Carvel, Stat("Repositories failing", count("Carvel PackageRepositories whose last reconcile failed."), Count(r#"carvel_packagerepository_info{S type="ReconcileFailed", status="True"}"#))),
            (Carvel, Stat("Packages with overlays", count("PackageInstalls customised by a ytt overlay Secret (the ext.packaging.carvel.dev/ytt-paths-from-secret-name annotation)."), Count(r#"carvel_packageinstall_info{S ytt_overlay_secret!=""}"#))),
            (Carvel, Table("Package installs", listing("Every PackageInstall with its package, version, conditions and overlay."), 24, "carvel_packageinstall_info{S}")),
            (Carvel, Table("Package repositories", listing("Every PackageRepository with its fetch source and conditions."), 12, "carvel_packagerepository_info{S}")),
            (Carvel, Table("Namespaces provisioned", listing("The namespaces each Carvel App (for example the namespace provisioner) deploys to."), 12, "carvel_app_namespaces{S}")),
        ],
    },
    Section {
        title: "Workloads",
        panels: &[
            (Cartographer, Stat("Workloads", count("Cartographer Workloads."), Count("cartographer_workload_info{S}"))),
            (Cartographer, Stat("Not ready", count("Workloads whose Ready condition is not True."), Count(promql::WORKLOAD_NOT_READY))),
            (Cartographer, Stat("Without a supply chain", count("Workloads no ClusterSupplyChain selected: their labels match no supply chain."), Count(promql::WORKLOAD_WITHOUT_SUPPLY_CHAIN))),
            (Cartographer, Stat("Git source", count("Objects built from a git repository rather than an image."), Count(r#"cartographer_workload_info{S source_image=""}"#))),
            (Cartographer, Stat("Image source", count("Objects deployed from a pre-built image rather than git."), Count(r#"cartographer_workload_info{S source_git_url=""}"#))),
            (Cartographer, Stat("Live update on", count("Workloads running with live update (inner-loop development)."), Count(r#"cartographer_workload_info{S live_update_enabled="true"}"#))),
            (Cartographer, Bars("Workloads per type", count("Workloads by their apps.tanzu.vmware.com/workload-type label (web, server, worker...)."), "count by (type) (cartographer_workload_info{S})", "{{type}}")),
            (Cartographer, Bars("Workloads per supply chain", count("Workloads by the ClusterSupplyChain that selected them."), "count by (supply_chain) (cartographer_workload_info{S})", "{{supply_chain}}")),
            (Cartographer, Stat("Debug on", count("Workloads with debugging enabled."), Count(r#"cartographer_workload_info{S debug_enabled="true"}"#))),
            (Cartographer, Table("Workloads not ready", listing("Each Workload whose Ready condition is not True, with its reason and message; a row links to the workload's supply chain."), 24, r#"cartographer_workload_status{S type="Ready", status!="True"}"#)),
        ],
    },
    Section {
        title: "Flux source controller",
        panels: &[
            (Flux, Table("Git sources of workloads", listing("Flux GitRepositories created for Workloads, with their Ready condition and last fetched revision."), 12, r#"flux_git_repository_status{S type="Ready", owner_type="Workload"}"#)),
            (Flux, Table("Git sources of deliverables", listing("Flux GitRepositories created for Deliverables, with their Ready condition."), 12, r#"flux_git_repository_status{S type="Ready", owner_type="Deliverable"}"#)),
        ],
    },
    Section {
        title: "Tanzu Build Service (kpack)",
        panels: &[
            (Kpack, Bars("Successful builds per workload", count("kpack Builds that succeeded, per workload (only the builds kpack keeps in history); a bar links to the workload's supply chain."), r#"count by (workload) (kpack_build_status{S type="Succeeded", status="True"})"#, "{{workload}}")),
            (Kpack, Bars("Failed builds per workload", count("kpack Builds that failed, per workload; a bar links to the workload's supply chain."), r#"count by (workload) (kpack_build_status{S type="Succeeded", status="False"})"#, "{{workload}}")),
            (Kpack, Bars("Workloads using each buildpack", count("How many workloads' builds used each buildpack."), "count by (id) (topk(1000, count by (id, workload) (kpack_build_involved_buildpacks{S})))", "{{id}}")),
        ],
    },
    Section {
        title: "Tekton",
        panels: &[
            (Tekton, Bars("Successful test runs per workload", count("Tekton PipelineRuns of the testing stage that succeeded, per workload."), r#"count by (workload) (tekton_pipeline_run_status{S type="Succeeded", status="True"})"#, "{{workload}}")),
            (Tekton, Bars("Failed test runs per workload", count("Tekton PipelineRuns of the testing stage that failed, per workload; a bar links to the workload's supply chain."), r#"count by (workload) (tekton_pipeline_run_status{S type="Succeeded", status="False"})"#, "{{workload}}")),
            (Tekton, Bars("Failed config writer runs per workload", count("Tekton TaskRuns of the config-writer stage (writing the delivery config to git or a registry) that failed, per workload."), r#"count by (workload) (tekton_task_run_status{S component="config-writer", type="Succeeded", status="False"})"#, "{{workload}}")),
        ],
    },
    Section {
        title: "Image and source scanning",
        panels: &[
            (Scanning, Table("Image scans", listing("Image scans with their scanner, policy and CVE counts by severity."), 12, "scst_image_scan_info{S}")),
            (Scanning, Table("Source scans", listing("Source scans with their scanner, policy and CVE counts by severity."), 12, "scst_source_scan_info{S}")),
        ],
    },
    Section {
        title: "Knative",
        panels: &[
            (Knative, Stat("Services not ready", count("Knative Services whose Ready condition is False."), Count(r#"knative_service_status{S type="Ready", status="False"}"#))),
            (Knative, Stat("Unhealthy revisions", count("Knative Revisions whose Ready condition is False."), Count(r#"knative_revision_status{S type="Ready", status="False"}"#))),
            (Knative, Table("Services whose latest revision is not ready", listing("Knative Services whose latest created Revision is not Ready: the new version did not roll out."), 16, promql::LATEST_REVISION_NOT_READY)),
        ],
    },
    Section {
        title: "Application accelerators and API descriptors",
        panels: &[
            (Accelerators, Stat("Accelerators", count("Application Accelerators."), Count("accelerator_info{S}"))),
            (Accelerators, Stat("Accelerators not ready", count("Accelerators whose source could not be fetched or read."), Count(r#"accelerator_info{S ready!="true"}"#))),
            (Accelerators, Stat("Fragments", count("Accelerator Fragments, shared pieces accelerators import."), Count("accelerator_fragment_info{S}"))),
            (Accelerators, Stat("Fragments not ready", count("Fragments whose source could not be fetched or read."), Count(r#"accelerator_fragment_info{S ready!="true"}"#))),
            (ApiDescriptors, Stat("API descriptors registered", count("APIDescriptors registered in the API portal."), Count(r#"api_descriptor_status{S type="Ready", status="True"}"#))),
            (ApiDescriptors, Stat("API descriptors not ready", count("APIDescriptors whose Ready condition is False (the API spec could not be fetched or parsed)."), Count(r#"api_descriptor_status{S type="Ready", status="False"}"#))),
        ],
    },
    Section {
        title: "Deliverables",
        panels: &[
            (Cartographer, Stat("Deliverables failing", count("Cartographer Deliverables whose Ready condition is not True."), Count(promql::DELIVERABLE_NOT_READY))),
            (Cartographer, Stat("Git source", count("Objects built from a git repository rather than an image."), Count(r#"cartographer_deliverable_info{S source_image=""}"#))),
            (Cartographer, Stat("Image source", count("Objects deployed from a pre-built image rather than git."), Count(r#"cartographer_deliverable_info{S source_git_url=""}"#))),
            (Cartographer, Table("Deliverables", listing("Each Deliverable with its Ready condition."), 12, r#"cartographer_deliverable_status{S type="Ready"}"#)),
        ],
    },
    Section {
        title: "Service bindings and Services Toolkit",
        panels: &[
            (ServiceBindings, Bars("Bindings per service kind", count("ServiceBindings by the kind of service they bind (a claim, a secret...)."), "count by (service_kind) (service_binding_info{S})", "{{service_kind}}")),
            (ServiceBindings, Table("Bindings not ready", listing("ServiceBindings whose Ready condition is not True, with reason and message."), 16, r#"service_binding_status{S type="Ready", status!="True"}"#)),
            (ServicesToolkit, Bars("Class claims per class", count("ClassClaims by the service class they claim."), "count by (class) (stk_class_claim_info{S})", "{{class}}")),
            (ServicesToolkit, Stat("Claims ready", count("ClassClaims bound to a service instance."), Count(r#"stk_class_claim_status{S type="Ready", status="True"}"#))),
            (ServicesToolkit, Stat("Claims failing", count("ClassClaims whose Ready condition is False."), Count(r#"stk_class_claim_status{S type="Ready", status="False"}"#))),
            (ServicesToolkit, Stat("Resource claims without a class claim", count("ResourceClaims made directly, not through a ClassClaim."), Count(r#"stk_resource_claim_info{S class_claim=""}"#))),
            (ServicesToolkit, Table("Cluster instance classes not ready", listing("ClusterInstanceClasses whose Ready condition is not True."), 24, r#"stk_cluster_instance_class_status{C type="Ready", status!="True"}"#)),
        ],
    },
];

/// Title of the row about tapmon itself.
pub const OPERATOR_ROW: &str = "tapmon operator";

/// tapmon itself, from its telemetry port as its own ServiceMonitor (`deploy/monitoring/`, the
/// chart's `selfMonitor`) has Prometheus scrape it: whether the numbers above can be trusted.
/// Not TAP data, so not limited to the monitor's series; empty where tapmon is not scraped.
fn operator_row(l: &mut Layout) {
    l.row(OPERATOR_ROW);
    l.stat(
        "Replicas up",
        count("tapmon replicas Prometheus reaches on their telemetry port. Every replica serves the same series; 0 means nothing above is current."),
        r#"count(up{job="tapmon", endpoint="telemetry"} == 1) or vector(0)"#,
    );
    l.stat(
        "Leader",
        About {
            description: "1 while a replica holds the Lease and writes monitor status, Events and published objects; 0 when none does (series are still served).",
            unit: "none",
        },
        r#"max(tapmon_leader{job="tapmon"}) or vector(0)"#,
    );
    l.stat(
        "Monitors stalled",
        count("Monitors whose status is Stalled, as the leader last wrote it: they will not recover without a change to the monitor or to tapmon's RBAC (see their conditions)."),
        r#"sum(tapmon_monitors_by_health{job="tapmon", health="stalled"} * on (namespace, pod) group_left () tapmon_leader{job="tapmon"}) or vector(0)"#,
    );
    l.stat(
        "Series left out",
        count("Series not served in the last hour because a monitor reached its series limit."),
        r#"sum(increase(tapmon_series_limit_left_out_total{job="tapmon"}[1h])) or vector(0)"#,
    );
    l.next_line();
    let errors = |description| About {
        description,
        unit: "short",
    };
    l.panel(
        "timeseries",
        "Watch errors",
        errors("Errors watching TAP kinds, per kind and reason, over 5 minutes: Forbidden means tapmon's ClusterRole lacks the kind; the kind's series are stale meanwhile."),
        12,
        8,
        &[(
            r#"sum by (kind, reason) (increase(tapmon_watch_errors_total{job="tapmon"}[5m]))"#,
            "{{kind}} {{reason}}",
        )],
        serde_json::json!({}),
    );
    l.panel(
        "timeseries",
        "Reconcile errors",
        errors("Errors reconciling monitors, per error, over 5 minutes: status, Events or published objects could not be written."),
        12,
        8,
        &[(
            r#"sum by (error) (increase(tapmon_reconcile_errors_total{job="tapmon"}[5m]))"#,
            "{{error}}",
        )],
        serde_json::json!({}),
    );
}

/// The TAP overview: the ten sections of the catalogue, panels only for enabled groups, then
/// tapmon itself.
pub fn overview(groups: &[TapGroup], scope: Option<&str>) -> Dashboard {
    let mut l = Layout::new(scope);
    if groups.contains(&Cartographer) {
        l.workload_link = Some(super::uid("supply-chain", scope));
    }
    for section in OVERVIEW {
        let mut shown = section
            .panels
            .iter()
            .filter(|(group, _)| groups.contains(group))
            .peekable();
        if shown.peek().is_none() {
            continue;
        }
        l.row(section.title);
        for (_, panel) in shown {
            match *panel {
                Stat(title, about, query) => l.stat(title, about, &query.template()),
                Bars(title, about, query, legend) => l.bars(title, about, query, legend),
                Table(title, about, width, query) => l.table(title, about, width, query),
            }
        }
    }
    operator_row(&mut l);
    Dashboard::new("overview", "TAP overview", scope, false, l)
}
