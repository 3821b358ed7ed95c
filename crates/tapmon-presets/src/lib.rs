//! The built-in presets for Tanzu Application Platform: one kube-state-metrics config per TAP
//! resource group, kept as data in `config/presets/` and embedded here. They are evaluated by
//! the same engine as user configs.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use tapmon_crs::model::{CustomResourceStateMetrics, Extension, Resource, Spec};

/// The TAP groups, one line each: the variant, its name (the field of a TapMonitor's
/// `spec.groups`, the `--group` of the CLI and the preset file `config/presets/<name>.yaml`) and
/// what it covers. Adding a group is a line here and its preset file.
macro_rules! tap_groups {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// A TAP resource group: the unit a TapMonitor turns on or off.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum TapGroup {
            $($(#[doc = $doc])* $variant,)*
        }

        impl TapGroup {
            /// Every group, in the catalogue's order.
            pub const ALL: [TapGroup; [$($name),*].len()] = [$(TapGroup::$variant),*];

            /// The group's one name (camelCase, as in a TapMonitor's `spec.groups`).
            pub fn name(self) -> &'static str {
                match self {
                    $(TapGroup::$variant => $name,)*
                }
            }

            /// What the group covers, for docs and the CRD schema.
            pub fn description(self) -> &'static str {
                match self {
                    $(TapGroup::$variant => concat!($($doc),*).trim_ascii(),)*
                }
            }

            /// The preset as shipped: kube-state-metrics YAML.
            pub fn source(self) -> &'static str {
                match self {
                    $(TapGroup::$variant => include_str!(concat!("../../../config/presets/", $name, ".yaml")),)*
                }
            }
        }
    };
}

tap_groups! {
    /// Cartographer workloads and deliverables (`carto.run`).
    Cartographer = "cartographer",
    /// Service bindings (`servicebinding.io`).
    ServiceBindings = "serviceBindings",
    /// Services Toolkit cluster instance classes, class claims and resource claims
    /// (`services.apps.tanzu.vmware.com`).
    ServicesToolkit = "servicesToolkit",
    /// Knative services and revisions (`serving.knative.dev`).
    Knative = "knative",
    /// Carvel package repositories, package installs and apps.
    Carvel = "carvel",
    /// API descriptors (`apis.apps.tanzu.vmware.com`).
    ApiDescriptors = "apiDescriptors",
    /// Tekton pipeline runs and task runs (`tekton.dev`).
    Tekton = "tekton",
    /// Application Accelerator accelerators and fragments.
    Accelerators = "accelerators",
    /// Flux git repositories (`source.toolkit.fluxcd.io`).
    Flux = "flux",
    /// Supply chain security image and source scans.
    Scanning = "scanning",
    /// kpack images and builds (`kpack.io`).
    Kpack = "kpack",
}

impl TapGroup {
    /// The preset's resources, parsed once per process (they are compiled into the binary).
    pub fn resources(self) -> Result<&'static [Resource], PresetError> {
        static PARSED: [OnceLock<Result<Vec<Resource>, PresetError>>; TapGroup::ALL.len()] =
            [const { OnceLock::new() }; TapGroup::ALL.len()];
        let index = TapGroup::ALL.iter().position(|g| *g == self).unwrap_or(0);
        PARSED[index]
            .get_or_init(|| {
                let error = |message: String| PresetError {
                    group: self.name(),
                    message,
                };
                // A shipped preset with a field the format does not read is a typo: an error.
                match tapmon_crs::yaml::from_str_reporting::<CustomResourceStateMetrics>(
                    self.source(),
                ) {
                    Ok((cfg, ignored)) if ignored.is_empty() => Ok(cfg.spec.resources),
                    Ok((_, ignored)) => {
                        Err(error(format!("unknown fields {}", ignored.join(", "))))
                    }
                    Err(e) => Err(error(e.to_string())),
                }
            })
            .as_deref()
            .map_err(Clone::clone)
    }
}

impl fmt::Display for TapGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A group name that is not one of the eleven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TAP group {0:?}; the groups are: {names}", names = group_names())]
pub struct UnknownGroup(pub String);

fn group_names() -> String {
    TapGroup::ALL.map(TapGroup::name).join(", ")
}

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
        resources.extend_from_slice(group.resources()?);
    }
    Ok(Spec { resources })
}

/// The version `tapmon presets` pins each API group to: the storage version of the TAP 1.x
/// CRDs (for Tekton, Flux and service bindings the newest of the two or three they serve).
/// kube-state-metrics reads a `*` kind once per served version, so an exported config with `*`
/// counts each object of a multi-version kind two or three times.
pub const EXPORT_VERSIONS: [(&str, &str); 12] = [
    ("accelerator.apps.tanzu.vmware.com", "v1alpha1"),
    ("apis.apps.tanzu.vmware.com", "v1alpha1"),
    ("carto.run", "v1alpha1"),
    ("kappctrl.k14s.io", "v1alpha1"),
    ("kpack.io", "v1alpha2"),
    ("packaging.carvel.dev", "v1alpha1"),
    ("scanning.apps.tanzu.vmware.com", "v1beta1"),
    ("servicebinding.io", "v1"),
    ("services.apps.tanzu.vmware.com", "v1alpha1"),
    ("serving.knative.dev", "v1"),
    ("source.toolkit.fluxcd.io", "v1"),
    ("tekton.dev", "v1"),
];

/// The presets as kube-state-metrics can read them, and what had to be left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// The config.
    pub spec: Spec,
    /// Metrics that use a tapmon extension, by full name, left out of `spec`.
    pub left_out: Vec<(String, Extension)>,
}

/// The presets of `groups` as a config for kube-state-metrics: each kind pinned to one
/// version, `overrides` (API group to version) first, else [`EXPORT_VERSIONS`]; metrics that
/// use a tapmon extension are left out (kube-state-metrics would refuse the config or read
/// them differently) and listed.
pub fn export_spec(
    groups: impl IntoIterator<Item = TapGroup>,
    overrides: &std::collections::BTreeMap<String, String>,
) -> Result<Export, PresetError> {
    let mut spec = spec_for(groups)?;
    let mut left_out = Vec::new();
    for r in &mut spec.resources {
        let resource = r.clone();
        r.metrics.retain(|m| match m.each.extension() {
            Some(extension) => {
                left_out.push((tapmon_crs::full_name(&resource, &m.name), extension));
                false
            }
            None => true,
        });
        let group = r.group_version_kind.group.as_str();
        let pinned = overrides.get(group).map(String::as_str).or_else(|| {
            EXPORT_VERSIONS
                .iter()
                .find(|(g, _)| *g == group)
                .map(|(_, v)| *v)
        });
        if let Some(version) = pinned {
            r.group_version_kind.version = version.to_owned();
        }
    }
    Ok(Export { spec, left_out })
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

    /// The timestamps added to the catalogue (kube-state-metrics' format): what DORA rules read.
    const TIMESTAMPS: [&str; 4] = [
        "cartographer_workload_resource_output_timestamp_seconds",
        "flux_git_repository_artifact_timestamp_seconds",
        "knative_revision_ready_timestamp_seconds",
        "kpack_build_created_timestamp_seconds",
    ];

    /// The families tapmon's extensions add, and the extension each uses.
    const EXTENSIONS: [(&str, Extension); 6] = [
        (
            "knative_revision_time_to_ready_seconds",
            Extension::Duration,
        ),
        ("kpack_build_duration_seconds", Extension::Duration),
        ("scst_image_scan_cves", Extension::IgnoreKeys),
        ("scst_source_scan_cves", Extension::IgnoreKeys),
        ("tekton_pipeline_run_duration_seconds", Extension::Duration),
        ("tekton_task_run_duration_seconds", Extension::Duration),
    ];

    /// Compiles `spec`, which must compile cleanly, and its family names in order.
    fn sorted_families(spec: &Spec) -> (Compiled, Vec<String>) {
        let (compiled, errors) = Compiled::compile(spec);
        assert!(errors.is_empty(), "{errors:?}");
        let mut names: Vec<String> = compiled
            .families()
            .iter()
            .map(|(_, d)| d.name.clone())
            .collect();
        names.sort_unstable();
        (compiled, names)
    }

    #[test]
    fn all_presets_compile_cleanly_into_the_42_families_and_the_additions() {
        let spec = spec_for(TapGroup::ALL).unwrap();
        assert_eq!(spec.resources.len(), 21);
        let (compiled, names) = sorted_families(&spec);
        let mut expected: Vec<&str> = FAMILIES
            .into_iter()
            .chain(TIMESTAMPS)
            .chain(EXTENSIONS.map(|(name, _)| name))
            .collect();
        expected.sort_unstable();
        assert_eq!(names, expected);
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

    /// The counters and histograms followed live, and which each is.
    const LIVE: [(&str, Extension); 6] = [
        (
            "knative_revision_ready_duration_seconds",
            Extension::Histogram,
        ),
        ("knative_revision_ready_total", Extension::Counter),
        (
            "kpack_build_completed_duration_seconds",
            Extension::Histogram,
        ),
        ("kpack_build_completed_total", Extension::Counter),
        (
            "tekton_pipeline_run_completed_duration_seconds",
            Extension::Histogram,
        ),
        ("tekton_pipeline_run_completed_total", Extension::Counter),
    ];

    #[test]
    fn the_live_metrics_compile_apart_from_the_families() {
        let (compiled, errors) = Compiled::compile(&spec_for(TapGroup::ALL).unwrap());
        assert!(errors.is_empty(), "{errors:?}");
        let mut live: Vec<&str> = compiled
            .resources()
            .iter()
            .flat_map(|r| r.live().iter().map(|l| l.name()))
            .collect();
        live.sort_unstable();
        assert_eq!(live, LIVE.map(|(name, _)| name));
    }

    #[test]
    fn the_export_holds_the_catalogue_and_leaves_out_exactly_the_extensions() {
        let export = export_spec(TapGroup::ALL, &Default::default()).unwrap();
        let mut left_out = export.left_out.clone();
        left_out.sort_by(|a, b| a.0.cmp(&b.0));
        let mut expected: Vec<(String, Extension)> = EXTENSIONS
            .iter()
            .chain(LIVE.iter())
            .map(|(name, e)| ((*name).to_owned(), *e))
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(left_out, expected);
        let (_, names) = sorted_families(&export.spec);
        let mut expected: Vec<&str> = FAMILIES.into_iter().chain(TIMESTAMPS).collect();
        expected.sort_unstable();
        assert_eq!(names, expected);
    }

    #[test]
    fn the_export_pins_every_kind_to_one_version() {
        let overrides =
            std::collections::BTreeMap::from([("tekton.dev".to_owned(), "v1beta1".to_owned())]);
        let spec = export_spec(TapGroup::ALL, &overrides).unwrap().spec;
        for r in &spec.resources {
            let gvk = &r.group_version_kind;
            assert_ne!(gvk.version, "*", "{gvk}");
            if gvk.group == "tekton.dev" {
                assert_eq!(gvk.version, "v1beta1");
            }
        }
    }
}
