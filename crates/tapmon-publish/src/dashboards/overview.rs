//! The TAP overview: the ten sections users of the proof of concept know, as data, each panel
//! shown when its group is enabled.

use tapmon_presets::TapGroup;

use super::layout::Layout;
use super::{Dashboard, Query};
use crate::promql;

/// A panel of the overview, by kind.
#[derive(Debug, Clone, Copy)]
enum Panel {
    /// A number.
    Stat(&'static str, Query),
    /// Horizontal bars, with a legend.
    Bars(&'static str, &'static str, &'static str),
    /// A table of series, of a width.
    Table(&'static str, u32, &'static str),
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
            (Carvel, Stat("Package installs failing", Count(promql::PACKAGE_INSTALL_FAILING))),
            (Carvel, Stat("Package installs reconciled", Count(r#"carvel_packageinstall_info{S type="ReconcileSucceeded", status="True"}"#))),
            (Carvel, Stat("Repositories failing", Count(r#"carvel_packagerepository_info{S type="ReconcileFailed", status="True"}"#))),
            (Carvel, Stat("Packages with overlays", Count(r#"carvel_packageinstall_info{S ytt_overlay_secret!=""}"#))),
            (Carvel, Table("Package installs", 24, "carvel_packageinstall_info{S}")),
            (Carvel, Table("Package repositories", 12, "carvel_packagerepository_info{S}")),
            (Carvel, Table("Namespaces provisioned", 12, "carvel_app_namespaces{S}")),
        ],
    },
    Section {
        title: "Workloads",
        panels: &[
            (Cartographer, Stat("Workloads", Count("cartographer_workload_info{S}"))),
            (Cartographer, Stat("Not ready", Count(promql::WORKLOAD_NOT_READY))),
            (Cartographer, Stat("Without a supply chain", Count(promql::WORKLOAD_WITHOUT_SUPPLY_CHAIN))),
            (Cartographer, Stat("Git source", Count(r#"cartographer_workload_info{S source_image=""}"#))),
            (Cartographer, Stat("Image source", Count(r#"cartographer_workload_info{S source_git_url=""}"#))),
            (Cartographer, Stat("Live update on", Count(r#"cartographer_workload_info{S live_update_enabled="true"}"#))),
            (Cartographer, Bars("Workloads per type", "count by (type) (cartographer_workload_info{S})", "{{type}}")),
            (Cartographer, Bars("Workloads per supply chain", "count by (supply_chain) (cartographer_workload_info{S})", "{{supply_chain}}")),
            (Cartographer, Stat("Debug on", Count(r#"cartographer_workload_info{S debug_enabled="true"}"#))),
            (Cartographer, Table("Workloads not ready", 24, r#"cartographer_workload_status{S type="Ready", status!="True"}"#)),
        ],
    },
    Section {
        title: "Flux source controller",
        panels: &[
            (Flux, Table("Git sources of workloads", 12, r#"flux_git_repository_status{S type="Ready", owner_type="Workload"}"#)),
            (Flux, Table("Git sources of deliverables", 12, r#"flux_git_repository_status{S type="Ready", owner_type="Deliverable"}"#)),
        ],
    },
    Section {
        title: "Tanzu Build Service (kpack)",
        panels: &[
            (Kpack, Bars("Successful builds per workload", r#"count by (workload) (kpack_build_status{S type="Succeeded", status="True"})"#, "{{workload}}")),
            (Kpack, Bars("Failed builds per workload", r#"count by (workload) (kpack_build_status{S type="Succeeded", status="False"})"#, "{{workload}}")),
            (Kpack, Bars("Workloads using each buildpack", "count by (id) (topk(1000, count by (id, workload) (kpack_build_involved_buildpacks{S})))", "{{id}}")),
        ],
    },
    Section {
        title: "Tekton",
        panels: &[
            (Tekton, Bars("Successful test runs per workload", r#"count by (workload) (tekton_pipeline_run_status{S type="Succeeded", status="True"})"#, "{{workload}}")),
            (Tekton, Bars("Failed test runs per workload", r#"count by (workload) (tekton_pipeline_run_status{S type="Succeeded", status="False"})"#, "{{workload}}")),
            (Tekton, Bars("Failed config writer runs per workload", r#"count by (workload) (tekton_task_run_status{S component="config-writer", type="Succeeded", status="False"})"#, "{{workload}}")),
        ],
    },
    Section {
        title: "Image and source scanning",
        panels: &[
            (Scanning, Table("Image scans", 12, "scst_image_scan_info{S}")),
            (Scanning, Table("Source scans", 12, "scst_source_scan_info{S}")),
        ],
    },
    Section {
        title: "Knative",
        panels: &[
            (Knative, Stat("Services not ready", Count(r#"knative_service_status{S type="Ready", status="False"}"#))),
            (Knative, Stat("Unhealthy revisions", Count(r#"knative_revision_status{S type="Ready", status="False"}"#))),
            (Knative, Table("Services whose latest revision is not ready", 16, promql::LATEST_REVISION_NOT_READY)),
        ],
    },
    Section {
        title: "Application accelerators and API descriptors",
        panels: &[
            (Accelerators, Stat("Accelerators", Count("accelerator_info{S}"))),
            (Accelerators, Stat("Accelerators not ready", Count(r#"accelerator_info{S ready!="true"}"#))),
            (Accelerators, Stat("Fragments", Count("accelerator_fragment_info{S}"))),
            (Accelerators, Stat("Fragments not ready", Count(r#"accelerator_fragment_info{S ready!="true"}"#))),
            (ApiDescriptors, Stat("API descriptors registered", Count(r#"api_descriptor_status{S type="Ready", status="True"}"#))),
            (ApiDescriptors, Stat("API descriptors not ready", Count(r#"api_descriptor_status{S type="Ready", status="False"}"#))),
        ],
    },
    Section {
        title: "Deliverables",
        panels: &[
            (Cartographer, Stat("Deliverables failing", Count(promql::DELIVERABLE_NOT_READY))),
            (Cartographer, Stat("Git source", Count(r#"cartographer_deliverable_info{S source_image=""}"#))),
            (Cartographer, Stat("Image source", Count(r#"cartographer_deliverable_info{S source_git_url=""}"#))),
            (Cartographer, Table("Deliverables", 12, r#"cartographer_deliverable_status{S type="Ready"}"#)),
        ],
    },
    Section {
        title: "Service bindings and Services Toolkit",
        panels: &[
            (ServiceBindings, Bars("Bindings per service kind", "count by (service_kind) (service_binding_info{S})", "{{service_kind}}")),
            (ServiceBindings, Table("Bindings not ready", 16, r#"service_binding_status{S type="Ready", status!="True"}"#)),
            (ServicesToolkit, Bars("Class claims per class", "count by (class) (stk_class_claim_info{S})", "{{class}}")),
            (ServicesToolkit, Stat("Claims ready", Count(r#"stk_class_claim_status{S type="Ready", status="True"}"#))),
            (ServicesToolkit, Stat("Claims failing", Count(r#"stk_class_claim_status{S type="Ready", status="False"}"#))),
            (ServicesToolkit, Stat("Resource claims without a class claim", Count(r#"stk_resource_claim_info{S class_claim=""}"#))),
            (ServicesToolkit, Table("Cluster instance classes not ready", 24, r#"stk_cluster_instance_class_status{C type="Ready", status!="True"}"#)),
        ],
    },
];

/// The TAP overview: the ten sections of the catalogue, panels only for enabled groups.
pub fn overview(groups: &[TapGroup], scope: Option<&str>) -> Dashboard {
    let mut l = Layout::new(scope);
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
                Stat(title, query) => l.stat(title, &query.template()),
                Bars(title, query, legend) => l.bars(title, query, legend),
                Table(title, width, query) => l.table(title, width, query),
            }
        }
    }
    Dashboard::new("overview", "TAP overview", scope, false, l)
}
