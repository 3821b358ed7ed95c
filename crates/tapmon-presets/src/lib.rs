//! The built-in presets for Tanzu Application Platform: one kube-state-metrics config per TAP
//! resource group, kept as data in `config/presets/` and embedded here. They are evaluated by
//! the same engine as user configs.

use std::fmt;
use std::str::FromStr;

use tapmon_crs::model::{CustomResourceStateMetrics, Resource, Spec};

/// A TAP resource group: the unit a TapMonitor turns on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TapGroup {
    /// Cartographer workloads and deliverables (`carto.run`).
    Cartographer,
    /// Service bindings (`servicebinding.io`).
    ServiceBindings,
    /// Services Toolkit classes and claims (`services.apps.tanzu.vmware.com`).
    ServicesToolkit,
    /// Knative services and revisions (`serving.knative.dev`).
    Knative,
    /// Carvel package repositories, package installs and apps.
    Carvel,
    /// API descriptors (`apis.apps.tanzu.vmware.com`).
    ApiDescriptors,
    /// Tekton pipeline runs and task runs (`tekton.dev`).
    Tekton,
    /// Application Accelerator accelerators and fragments.
    Accelerators,
    /// Flux git repositories (`source.toolkit.fluxcd.io`).
    Flux,
    /// Supply chain security image and source scans.
    Scanning,
    /// kpack images and builds (`kpack.io`).
    Kpack,
}

impl TapGroup {
    /// Every group, in the catalogue's order.
    pub const ALL: [TapGroup; 11] = [
        TapGroup::Cartographer,
        TapGroup::ServiceBindings,
        TapGroup::ServicesToolkit,
        TapGroup::Knative,
        TapGroup::Carvel,
        TapGroup::ApiDescriptors,
        TapGroup::Tekton,
        TapGroup::Accelerators,
        TapGroup::Flux,
        TapGroup::Scanning,
        TapGroup::Kpack,
    ];

    /// The group's name, as in `config/presets/<name>.yaml`.
    pub fn name(self) -> &'static str {
        match self {
            TapGroup::Cartographer => "cartographer",
            TapGroup::ServiceBindings => "service-bindings",
            TapGroup::ServicesToolkit => "services-toolkit",
            TapGroup::Knative => "knative",
            TapGroup::Carvel => "carvel",
            TapGroup::ApiDescriptors => "api-descriptors",
            TapGroup::Tekton => "tekton",
            TapGroup::Accelerators => "accelerators",
            TapGroup::Flux => "flux",
            TapGroup::Scanning => "scanning",
            TapGroup::Kpack => "kpack",
        }
    }

    /// The preset as shipped: kube-state-metrics YAML.
    pub fn source(self) -> &'static str {
        match self {
            TapGroup::Cartographer => include_str!("../../../config/presets/cartographer.yaml"),
            TapGroup::ServiceBindings => {
                include_str!("../../../config/presets/service-bindings.yaml")
            }
            TapGroup::ServicesToolkit => {
                include_str!("../../../config/presets/services-toolkit.yaml")
            }
            TapGroup::Knative => include_str!("../../../config/presets/knative.yaml"),
            TapGroup::Carvel => include_str!("../../../config/presets/carvel.yaml"),
            TapGroup::ApiDescriptors => {
                include_str!("../../../config/presets/api-descriptors.yaml")
            }
            TapGroup::Tekton => include_str!("../../../config/presets/tekton.yaml"),
            TapGroup::Accelerators => include_str!("../../../config/presets/accelerators.yaml"),
            TapGroup::Flux => include_str!("../../../config/presets/flux.yaml"),
            TapGroup::Scanning => include_str!("../../../config/presets/scanning.yaml"),
            TapGroup::Kpack => include_str!("../../../config/presets/kpack.yaml"),
        }
    }

    /// The preset's resources.
    pub fn resources(self) -> Result<Vec<Resource>, PresetError> {
        let cfg: CustomResourceStateMetrics =
            tapmon_crs::yaml::from_str(self.source()).map_err(|e| PresetError {
                group: self.name(),
                message: e.to_string(),
            })?;
        Ok(cfg.spec.resources)
    }
}

impl fmt::Display for TapGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A group name that is not one of the eleven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown TAP group {0:?}; the groups are: cartographer, service-bindings, services-toolkit, knative, carvel, api-descriptors, tekton, accelerators, flux, scanning, kpack"
)]
pub struct UnknownGroup(pub String);

impl FromStr for TapGroup {
    type Err = UnknownGroup;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TapGroup::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| UnknownGroup(s.to_owned()))
    }
}

/// A shipped preset that does not parse: a bug in the build, reported rather than panicking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("built-in preset {group} does not parse: {message}")]
pub struct PresetError {
    /// The group.
    pub group: &'static str,
    /// The parser's message.
    pub message: String,
}

/// The presets of `groups`, in catalogue order, as one config.
pub fn spec_for(groups: impl IntoIterator<Item = TapGroup>) -> Result<Spec, PresetError> {
    let mut groups: Vec<TapGroup> = groups.into_iter().collect();
    groups.sort();
    groups.dedup();
    let mut resources = Vec::new();
    for group in groups {
        resources.extend(group.resources()?);
    }
    Ok(Spec { resources })
}

#[cfg(test)]
mod tests {
    use tapmon_crs::Compiled;
    use tapmon_crs::model::PathSpec;

    use super::*;

    /// The 42 families of the catalogue users already query: a contract.
    const FAMILIES: [&str; 42] = [
        "accelerator_fragment_info",
        "accelerator_fragment_status",
        "accelerator_imports_info",
        "accelerator_info",
        "accelerator_status",
        "api_descriptor_info",
        "api_descriptor_status",
        "cartographer_deliverable_info",
        "cartographer_deliverable_status",
        "cartographer_workload_info",
        "cartographer_workload_status",
        "carvel_app_info",
        "carvel_app_namespaces",
        "carvel_packageinstall_info",
        "carvel_packagerepository_info",
        "flux_git_repository_info",
        "flux_git_repository_status",
        "knative_revision_info",
        "knative_revision_status",
        "knative_service_info",
        "knative_service_status",
        "kpack_build_info",
        "kpack_build_involved_buildpacks",
        "kpack_build_status",
        "kpack_image_info",
        "kpack_image_status",
        "scst_image_scan_info",
        "scst_image_scan_status",
        "scst_source_scan_info",
        "scst_source_scan_status",
        "service_binding_info",
        "service_binding_status",
        "stk_class_claim_info",
        "stk_class_claim_status",
        "stk_cluster_instance_class_composition_selector",
        "stk_cluster_instance_class_status",
        "stk_resource_claim_info",
        "stk_resource_claim_status",
        "tekton_pipeline_run_info",
        "tekton_pipeline_run_status",
        "tekton_task_run_info",
        "tekton_task_run_status",
    ];

    #[test]
    fn all_presets_compile_cleanly_into_the_42_families() {
        let spec = spec_for(TapGroup::ALL).unwrap();
        assert_eq!(spec.resources.len(), 21);
        let (compiled, errors) = Compiled::compile(&spec);
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<&str> = compiled
            .families()
            .iter()
            .map(|(_, d)| d.name.as_str())
            .collect();
        assert_eq!(names, FAMILIES);
        assert!(compiled.families().iter().all(|(_, d)| !d.help.is_empty()));
    }

    #[test]
    fn presets_use_only_what_kube_state_metrics_reads() {
        // `tapmon presets` must be a config kube-state-metrics itself accepts: path lists only,
        // `*` versions, no duplicate kinds.
        let spec = spec_for(TapGroup::ALL).unwrap();
        let mut kinds = Vec::new();
        for r in &spec.resources {
            assert_eq!(r.group_version_kind.version, "*");
            kinds.push((
                r.group_version_kind.group.clone(),
                r.group_version_kind.kind.clone(),
            ));
            let mut paths: Vec<&PathSpec> = r.labels_from_path.iter().map(|(_, p)| p).collect();
            for m in &r.metrics {
                paths.extend(m.labels_from_path.iter().map(|(_, p)| p));
                if let Some(g) = &m.each.gauge {
                    paths.push(&g.path);
                    paths.extend(g.labels_from_path.iter().map(|(_, p)| p));
                }
                if let Some(i) = &m.each.info {
                    paths.push(&i.path);
                    paths.extend(i.labels_from_path.iter().map(|(_, p)| p));
                }
            }
            assert!(
                paths.iter().all(|p| matches!(p, PathSpec::Segments(_))),
                "{r:?}"
            );
        }
        let before = kinds.len();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), before);
    }

    #[test]
    fn group_names_round_trip() {
        for g in TapGroup::ALL {
            assert_eq!(g.name().parse::<TapGroup>(), Ok(g));
        }
        assert!(
            "kpak"
                .parse::<TapGroup>()
                .unwrap_err()
                .to_string()
                .contains("kpack")
        );
    }
}
