//! Readiness as pure functions: from the objects of a store (as the watches cache them) and
//! its blueprint's declared lifecycle, which steps are done and whether it failed.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::DynamicObject;

use crate::blueprint::lifecycle::{Lifecycle, WorkloadKind};

/// What the objects of a store say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Observed {
    /// For each entry of the lifecycle's `ready`, whether it is done.
    pub done: Vec<bool>,
    /// Why the store will not become ready on its own, if it will not.
    pub failure: Option<String>,
}

impl Observed {
    /// Whether every declared workload is done.
    pub fn ready(&self) -> bool {
        self.done.iter().all(|d| *d)
    }

    /// The steps still waited for, by name.
    pub fn waiting<'a>(&self, lifecycle: &'a Lifecycle) -> Vec<&'a str> {
        lifecycle
            .ready
            .iter()
            .zip(&self.done)
            .filter(|(_, done)| !**done)
            .map(|(r, _)| r.step.as_str())
            .collect()
    }
}

/// Observes a store: `object(kind, name)` is the store's object of that kind and name, if it
/// exists; `pods` are the store's pods.
pub(crate) fn observe<'a>(
    lifecycle: &Lifecycle,
    object: impl Fn(WorkloadKind, &str) -> Option<&'a DynamicObject>,
    pods: &[Pod],
) -> Observed {
    let mut failure = None;
    let done = lifecycle
        .ready
        .iter()
        .map(|ready| {
            // A workload that is missing (deleted while being applied, say) is not done.
            let Some(obj) = object(ready.kind, &ready.name) else {
                return false;
            };
            match ready.kind {
                // Ready replicas of the current template: while a changed workload rolls
                // out, the old pod is still ready, but not updated.
                WorkloadKind::Deployment => parse::<Deployment>(obj).is_some_and(|d| {
                    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    let status = d.status.as_ref();
                    status.and_then(|s| s.ready_replicas).unwrap_or(0) >= wanted
                        && status.and_then(|s| s.updated_replicas).unwrap_or(0) >= wanted
                        && status.and_then(|s| s.observed_generation) >= d.metadata.generation
                }),
                WorkloadKind::StatefulSet => parse::<StatefulSet>(obj).is_some_and(|s| {
                    let wanted = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    let status = s.status.as_ref();
                    status.and_then(|s| s.ready_replicas).unwrap_or(0) >= wanted
                        && status.and_then(|s| s.updated_replicas).unwrap_or(0) >= wanted
                        && status.and_then(|s| s.observed_generation) >= s.metadata.generation
                }),
                WorkloadKind::Job => {
                    let Some(job) = parse::<Job>(obj) else {
                        return false;
                    };
                    if failure.is_none()
                        && let Some((reason, message)) = job_condition(&job, "Failed")
                    {
                        let meaning = ready.failure.as_deref().unwrap_or("a step failed");
                        failure = Some(format!(
                            "{meaning}: Job {} {}{}",
                            ready.name,
                            reason.unwrap_or_else(|| "failed".to_owned()),
                            message.map(|m| format!(": {m}")).unwrap_or_default()
                        ));
                    }
                    job_condition(&job, "Complete").is_some()
                }
            }
        })
        .collect();
    if failure.is_none() {
        failure = pods.iter().find_map(pod_failure);
    }
    Observed { done, failure }
}

/// What a suspending store still waits for, for people (`StatefulSet mysql: 1 replica`,
/// `pod wordpress-1`); nothing once it is suspended: every workload its blueprint suspends
/// reports zero replicas for its current generation, and no pod is left in its namespace.
/// `pods` are the store's pods, finished ones included (see [`finished`]).
pub(crate) fn suspension<'a>(
    lifecycle: &Lifecycle,
    object: impl Fn(WorkloadKind, &str) -> Option<&'a DynamicObject>,
    pods: &[Pod],
) -> Vec<String> {
    let mut waiting = Vec::new();
    for workload in &lifecycle.suspend {
        // A missing workload (deleted and not re-applied yet) runs nothing, but the apply
        // will bring it back at zero: wait for that.
        let Some(obj) = object(workload.kind, &workload.name) else {
            waiting.push(format!(
                "{} {}: not there yet",
                workload.kind, workload.name
            ));
            continue;
        };
        let (wanted, generation, observed, replicas) = match workload.kind {
            WorkloadKind::Deployment => parse::<Deployment>(obj).map(|d| {
                let status = d.status.unwrap_or_default();
                (
                    d.spec.and_then(|s| s.replicas).unwrap_or(1),
                    d.metadata.generation,
                    status.observed_generation,
                    status.replicas.unwrap_or(0),
                )
            }),
            WorkloadKind::StatefulSet => parse::<StatefulSet>(obj).map(|s| {
                let status = s.status.unwrap_or_default();
                (
                    s.spec.and_then(|s| s.replicas).unwrap_or(1),
                    s.metadata.generation,
                    status.observed_generation,
                    status.replicas,
                )
            }),
            WorkloadKind::Job => None,
        }
        .unwrap_or((1, None, None, 1));
        if wanted != 0 || observed < generation || replicas != 0 {
            waiting.push(format!(
                "{} {}: {replicas} replica{}",
                workload.kind,
                workload.name,
                if replicas == 1 { "" } else { "s" }
            ));
        }
    }
    waiting.extend(pods.iter().map(|p| format!("pod {}", p.name_any())));
    waiting
}

/// Whether the pod has finished (succeeded or failed): a pod of a completed Job, which no
/// controller deletes. Suspending deletes these, so that a suspended store holds no pod;
/// the Job stays complete and is not run again.
pub(crate) fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether a cached object is (at least) the version this process last applied, given as
/// its UID and the generation the apply produced; any version is when there is none.
pub(crate) fn is_current(
    cached: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    applied: Option<&(String, i64)>,
) -> bool {
    applied.is_none_or(|(uid, generation)| {
        cached.uid.as_deref() == Some(uid.as_str())
            && cached.generation.unwrap_or_default() >= *generation
    })
}

fn parse<K: serde::de::DeserializeOwned>(obj: &DynamicObject) -> Option<K> {
    serde_json::to_value(obj)
        .ok()
        .and_then(|value| serde_json::from_value(value).ok())
}

/// The reason and message of a Job's condition of `kind` when it is true.
fn job_condition(job: &Job, kind: &str) -> Option<(Option<String>, Option<String>)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
        .map(|c| (c.reason.clone(), c.message.clone()))
}

/// Why a pod will not come up on its own, if it will not: an image that cannot be pulled, or
/// a container that keeps crashing.
pub(crate) fn pod_failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in statuses {
        let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = waiting.reason.as_deref().unwrap_or_default();
        let message = waiting
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        match reason {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" => {
                return Some(format!(
                    "image {} of container {} in pod {} cannot be pulled ({reason}{message})",
                    container.image,
                    container.name,
                    pod.name_any()
                ));
            }
            "CrashLoopBackOff" | "CreateContainerConfigError" => {
                return Some(format!(
                    "container {} in pod {} keeps failing ({reason}{message})",
                    container.name,
                    pod.name_any()
                ));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lifecycle() -> Lifecycle {
        crate::yaml::from_str(
            "ready:\n\
             - {kind: StatefulSet, name: db, step: db, message: db up}\n\
             - {kind: Deployment, name: web, step: web, message: web up}\n\
             - {kind: Job, name: seed, step: seed, message: seeded, failure: seeding failed}\n",
        )
        .unwrap()
    }

    fn object(value: serde_json::Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    fn workload(
        kind: &str,
        name: &str,
        generation: i64,
        observed: i64,
        ready: i32,
    ) -> DynamicObject {
        object(json!({
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "generation": generation},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "readyReplicas": ready,
                       "updatedReplicas": ready}
        }))
    }

    fn job(condition: Option<(&str, &str)>) -> DynamicObject {
        let conditions: Vec<_> = condition
            .into_iter()
            .map(|(kind, reason)| json!({"type": kind, "status": "True", "reason": reason, "message": "it broke"}))
            .collect();
        object(json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "seed"},
            "spec": {"template": {}}, "status": {"conditions": conditions}
        }))
    }

    fn observe_with(objects: &[DynamicObject], pods: &[Pod]) -> Observed {
        let l = lifecycle();
        observe(
            &l,
            |kind, name| {
                objects.iter().find(|o| {
                    o.types.as_ref().is_some_and(|t| t.kind == kind.as_str())
                        && o.metadata.name.as_deref() == Some(name)
                })
            },
            pods,
        )
    }

    #[test]
    fn ready_when_every_declared_workload_is_done() {
        let all = [
            workload("StatefulSet", "db", 1, 1, 1),
            workload("Deployment", "web", 2, 2, 1),
            job(Some(("Complete", "Done"))),
        ];
        let observed = observe_with(&all, &[]);
        assert_eq!(observed.done, [true, true, true]);
        assert!(observed.ready());
        assert_eq!(observed.failure, None);
    }

    #[test]
    fn a_status_of_an_older_generation_or_a_missing_workload_is_not_ready() {
        let stale = [
            workload("StatefulSet", "db", 1, 1, 1),
            workload("Deployment", "web", 3, 2, 1),
        ];
        let observed = observe_with(&stale, &[]);
        assert_eq!(observed.done, [true, false, false]);
        assert_eq!(observed.waiting(&lifecycle()), ["web", "seed"]);
    }

    // Regression guard: a changed workload's old pod is still ready while the controller
    // rolls it out; the store is not ready again until a pod of the new template is.
    #[test]
    fn a_workload_rolling_out_a_new_template_is_not_ready_until_an_updated_pod_is() {
        let rolling = |kind: &str, updated: i32| {
            object(json!({
                "apiVersion": "apps/v1", "kind": kind,
                "metadata": {"name": if kind == "Deployment" { "web" } else { "db" }, "generation": 3},
                "spec": {"replicas": 1, "selector": {}, "template": {}},
                "status": {"observedGeneration": 3, "readyReplicas": 1, "updatedReplicas": updated}
            }))
        };
        let done = job(Some(("Complete", "Done")));
        let old = [
            rolling("StatefulSet", 0),
            rolling("Deployment", 0),
            done.clone(),
        ];
        assert_eq!(observe_with(&old, &[]).done, [false, false, true]);
        let new = [rolling("StatefulSet", 1), rolling("Deployment", 1), done];
        assert!(observe_with(&new, &[]).ready());
    }

    #[test]
    fn a_failed_job_fails_the_store_with_its_declared_meaning() {
        let observed = observe_with(&[job(Some(("Failed", "BackoffLimitExceeded")))], &[]);
        let failure = observed.failure.unwrap();
        assert!(
            failure.starts_with("seeding failed: Job seed BackoffLimitExceeded: it broke"),
            "{failure}"
        );
    }

    #[test]
    fn pods_that_cannot_start_are_failures() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1"},
            "status": {"containerStatuses": [{
                "name": "web", "image": "nope:1", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}
            }]}
        }))
        .unwrap();
        let observed = observe_with(&[], &[pod]);
        let failure = observed.failure.unwrap();
        assert!(
            failure.contains("image nope:1") && failure.contains("cannot be pulled"),
            "{failure}"
        );
    }

    fn scaled(
        kind: &str,
        name: &str,
        wanted: i32,
        generation: i64,
        observed: i64,
        replicas: i32,
    ) -> DynamicObject {
        object(json!({
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "generation": generation},
            "spec": {"replicas": wanted, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "replicas": replicas}
        }))
    }

    #[test]
    fn suspended_when_every_declared_workload_is_at_zero_and_no_pod_is_left() {
        let l: Lifecycle = crate::yaml::from_str(
            "suspend: [{kind: StatefulSet, name: db}, {kind: Deployment, name: web}]",
        )
        .unwrap();
        let find = |objects: &'static [DynamicObject]| {
            move |kind: WorkloadKind, name: &str| {
                objects.iter().find(|o| {
                    o.types.as_ref().is_some_and(|t| t.kind == kind.as_str())
                        && o.metadata.name.as_deref() == Some(name)
                })
            }
        };
        let down: &'static [DynamicObject] = Vec::leak(vec![
            scaled("StatefulSet", "db", 0, 2, 2, 0),
            scaled("Deployment", "web", 0, 2, 2, 0),
        ]);
        assert!(suspension(&l, find(down), &[]).is_empty());

        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "web-1"}})).unwrap();
        assert_eq!(suspension(&l, find(down), &[pod]), ["pod web-1"]);

        // The controller has not seen the new generation yet, or a replica is still there.
        let going: &'static [DynamicObject] = Vec::leak(vec![
            scaled("StatefulSet", "db", 0, 2, 1, 0),
            scaled("Deployment", "web", 0, 2, 2, 1),
        ]);
        assert_eq!(
            suspension(&l, find(going), &[]),
            ["StatefulSet db: 0 replicas", "Deployment web: 1 replica"]
        );
        let missing: &'static [DynamicObject] =
            Vec::leak(vec![scaled("StatefulSet", "db", 0, 1, 1, 0)]);
        assert_eq!(
            suspension(&l, find(missing), &[]),
            ["Deployment web: not there yet"]
        );
    }

    // Regression guard: resuming applies replicas 1 over a cached "0 of 0 ready" Deployment;
    // read before the apply's watch event arrives, that stale version looked ready.
    #[test]
    fn a_cached_version_older_than_the_last_apply_is_not_current() {
        let meta = |uid: &str, generation: i64| {
            k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                uid: Some(uid.to_owned()),
                generation: Some(generation),
                ..Default::default()
            }
        };
        let applied = ("u1".to_owned(), 3);
        assert!(is_current(&meta("u1", 3), Some(&applied)));
        assert!(is_current(&meta("u1", 4), Some(&applied)));
        assert!(
            !is_current(&meta("u1", 2), Some(&applied)),
            "before the apply"
        );
        assert!(
            !is_current(&meta("u0", 9), Some(&applied)),
            "a deleted object"
        );
        assert!(
            is_current(&meta("u0", 1), None),
            "applied by another process"
        );
    }

    #[test]
    fn only_finished_pods_are_finished() {
        let pod = |phase: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {"phase": phase}}))
                .unwrap()
        };
        assert!(finished(&pod("Succeeded")) && finished(&pod("Failed")));
        assert!(!finished(&pod("Running")) && !finished(&pod("Pending")));
    }

    #[test]
    fn a_blueprint_without_workloads_is_ready_at_once() {
        let observed = observe(&Lifecycle::default(), |_, _| None, &[]);
        assert!(observed.ready());
    }
}
