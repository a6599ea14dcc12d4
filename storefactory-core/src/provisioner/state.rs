//! The Provisioner's runtime knowledge of each store, in one map entry per store: forgetting
//! a store is one removal.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use crate::spec::StoreId;

/// The last version of an object this process applied or saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub resource_version: Option<String>,
    /// A hash of the fields we own by apply ([`super::watch::ownership`]); `None` when we
    /// own none (the object was created, not applied, or not by us).
    pub content: Option<u64>,
}

/// What this process knows of one store beyond its record.
#[derive(Debug, Default)]
pub(crate) struct StoreState {
    /// Whether this process applied the store's objects in its current provisioning pass;
    /// later reconciles of the pass only observe.
    pub applied: bool,
    /// The lifecycle steps already reported in this pass.
    pub reported: BTreeSet<String>,
    /// Bumped by each request to re-apply the store (possible drift, a user action); a pass
    /// answers the requests made before it started, so one made during it is not lost.
    pub apply_requests: u64,
    /// The last known version of each of the store's objects, by UID: tells this process's
    /// own apply echoes and status-only updates from changes that need a re-apply. Entries
    /// go with the objects' deletion.
    pub seen: HashMap<String, Seen>,
    /// Objects (`Kind/name`) being applied right now: their watch events may arrive before
    /// the apply's answer says which version is ours.
    pub in_flight: HashMap<String, usize>,
    /// Warnings already recorded, so that a condition that persists is reported once.
    pub warned: HashSet<String>,
    /// The UID and generation each object (`Kind/name`) had when this process last applied
    /// it: a cached version older than that predates the apply (its watch event has not
    /// arrived yet) and says nothing about what was just asked for. Resuming a suspended
    /// store would otherwise read its workloads' "zero of zero replicas ready" as ready.
    pub generations: HashMap<String, (String, i64)>,
}

impl StoreState {
    /// Starts a new provisioning pass: the objects are applied again and every step is
    /// reported anew.
    pub fn new_pass(&mut self) {
        self.applied = false;
        self.reported.clear();
    }
}

/// Every store's [`StoreState`].
#[derive(Debug, Default)]
pub(crate) struct States(Mutex<HashMap<StoreId, StoreState>>);

impl States {
    /// Runs `f` on the store's state, creating it if needed.
    pub fn with<T>(&self, id: &StoreId, f: impl FnOnce(&mut StoreState) -> T) -> T {
        let mut states = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(states.entry(id.clone()).or_default())
    }

    /// Runs `f` on the store's state if there is one.
    pub fn get<T>(&self, id: &StoreId, f: impl FnOnce(&StoreState) -> T) -> Option<T> {
        let states = self.0.lock().unwrap_or_else(|p| p.into_inner());
        states.get(id).map(f)
    }

    /// Forgets the store.
    pub fn forget(&self, id: &StoreId) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// The stores known.
    pub fn ids(&self) -> Vec<StoreId> {
        let states = self.0.lock().unwrap_or_else(|p| p.into_inner());
        states.keys().cloned().collect()
    }

    /// How many stores are known.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
