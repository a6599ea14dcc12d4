//! Typed, validated parameters of a store: what a blueprint is rendered from.
//!
//! Every type here deserializes with defaults for what the user leaves out, rejects unknown
//! fields, and is checked by [`StoreSpec::validate`] before anything is rendered.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::product::Product;

/// Longest Kubernetes namespace name.
const MAX_NAMESPACE_LEN: usize = 63;
/// Namespaces of stores are `store-<id>`.
pub const NAMESPACE_PREFIX: &str = "store-";
/// Longest store id, so that `store-<id>` is a valid namespace.
pub const MAX_STORE_ID_LEN: usize = MAX_NAMESPACE_LEN - NAMESPACE_PREFIX.len();
/// Most products a store may be seeded with.
pub const MAX_PRODUCTS: usize = 500;
/// Most bytes the products may take as JSON: they travel in a ConfigMap, which Kubernetes
/// limits to 1 MiB with everything else in it.
pub const MAX_PRODUCTS_JSON_BYTES: usize = 512 * 1024;
/// Longest site title.
pub const MAX_TITLE_LEN: usize = 200;

type VResult<T> = Result<T, ValidationError>;

/// Whether `s` is a DNS-1123 label: lowercase alphanumerics and `-`, starting and ending
/// alphanumeric, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn check_label(field: &str, value: &str) -> VResult<()> {
    if is_dns1123_label(value) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "{value:?} is not a DNS-1123 label (lowercase letters, digits and '-', \
                 starting and ending with a letter or digit, at most 63 characters)"
            ),
        ))
    }
}

fn check_text(field: &str, value: &str, max: usize) -> VResult<()> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// The id of a store: a DNS-1123 label short enough that `store-<id>` is a namespace name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StoreId(String);

impl StoreId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> VResult<Self> {
        let id = id.into();
        if id.len() > MAX_STORE_ID_LEN {
            return Err(ValidationError::new(
                "id",
                format!("{id:?} is longer than {MAX_STORE_ID_LEN} characters"),
            ));
        }
        check_label("id", &id)?;
        Ok(StoreId(id))
    }

    /// A fresh random id: eight lowercase letters and digits, starting with a letter.
    pub fn generate() -> Self {
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
        const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let mut id = String::with_capacity(8);
        id.push(char::from(LETTERS[rng.random_range(0..LETTERS.len())]));
        for _ in 1..8 {
            id.push(char::from(ALNUM[rng.random_range(0..ALNUM.len())]));
        }
        StoreId(id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace holding the store: `store-<id>`.
    pub fn namespace(&self) -> String {
        format!("{NAMESPACE_PREFIX}{}", self.0)
    }

    /// The store id of a namespace named `store-<id>`, if it is one.
    pub fn from_namespace(namespace: &str) -> Option<Self> {
        namespace
            .strip_prefix(NAMESPACE_PREFIX)
            .and_then(|id| StoreId::new(id).ok())
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for StoreId {
    type Error = ValidationError;
    fn try_from(value: String) -> VResult<Self> {
        StoreId::new(value)
    }
}

impl From<StoreId> for String {
    fn from(id: StoreId) -> String {
        id.0
    }
}

impl FromStr for StoreId {
    type Err = ValidationError;
    fn from_str(s: &str) -> VResult<Self> {
        StoreId::new(s)
    }
}

/// A Kubernetes quantity such as `2Gi`, `500m` or `1.5`, validated on construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Quantity(String);

/// Binary and decimal suffixes of quantities, with their multipliers.
const QUANTITY_SUFFIXES: &[(&str, f64)] = &[
    ("Ki", 1024.0),
    ("Mi", 1048576.0),
    ("Gi", 1073741824.0),
    ("Ti", 1099511627776.0),
    ("Pi", 1125899906842624.0),
    ("Ei", 1152921504606846976.0),
    ("n", 1e-9),
    ("u", 1e-6),
    ("m", 1e-3),
    ("", 1.0),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
    ("E", 1e18),
];

impl Quantity {
    /// Validates `text` as a Kubernetes quantity (sign, decimal number, optional suffix or
    /// decimal exponent), as the apiserver would accept it.
    pub fn parse(field: &str, text: impl Into<String>) -> VResult<Self> {
        let text = text.into();
        if Self::value_of(&text).is_none() {
            return Err(ValidationError::new(
                field,
                format!(
                    "{text:?} is not a Kubernetes quantity (for example 2Gi, 512Mi, 500m or 1)"
                ),
            ));
        }
        Ok(Quantity(text))
    }

    fn value_of(text: &str) -> Option<f64> {
        let number_len = text
            .bytes()
            .position(|b| !(b.is_ascii_digit() || b == b'.' || b == b'+' || b == b'-'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(number_len);
        let digits = number.strip_prefix(['+', '-']).unwrap_or(number);
        let valid_number = !digits.is_empty()
            && digits.bytes().any(|b| b.is_ascii_digit())
            && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && digits.bytes().filter(|b| *b == b'.').count() <= 1;
        if !valid_number {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        if !value.is_finite() {
            return None;
        }
        // Suffixes first: `E` and `Ei` are suffixes, `E3` an exponent.
        let multiplier = match QUANTITY_SUFFIXES.iter().find(|(s, _)| *s == suffix) {
            Some((_, m)) => *m,
            None => {
                let exponent: i32 = suffix.strip_prefix(['e', 'E'])?.parse().ok()?;
                10f64.powi(exponent)
            }
        };
        // `1e400` overflows to infinity: not a quantity anyone means.
        Some(value * multiplier).filter(|v| v.is_finite())
    }

    /// The value in base units (bytes for storage, cores for cpu).
    pub fn value(&self) -> f64 {
        Self::value_of(&self.0).unwrap_or_default()
    }

    /// The value in GiB, rounded up: what a volume of this size counts against a quota.
    pub fn gib_ceil(&self) -> u64 {
        let gib = self.value() / 1073741824.0;
        if gib <= 0.0 { 0 } else { gib.ceil() as u64 }
    }

    /// A quantity of whole GiB.
    pub fn gib(n: u64) -> Self {
        Quantity(format!("{n}Gi"))
    }

    /// The quantity as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Positive, and at most what the apiserver stores (a signed 64-bit count of base
    /// units), so that sums of quantities stay meaningful.
    fn must_be_positive(&self, field: &str) -> VResult<()> {
        let value = self.value();
        if value <= 0.0 {
            return Err(ValidationError::new(
                field,
                format!("{} must be greater than zero", self.0),
            ));
        }
        if value >= MAX_QUANTITY {
            return Err(ValidationError::new(
                field,
                format!("{} is larger than Kubernetes accepts", self.0),
            ));
        }
        Ok(())
    }
}

impl TryFrom<String> for Quantity {
    type Error = ValidationError;
    fn try_from(value: String) -> VResult<Self> {
        Quantity::parse("quantity", value)
    }
}

impl From<Quantity> for String {
    fn from(q: Quantity) -> String {
        q.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The largest quantity value the apiserver represents: 2^63 base units.
const MAX_QUANTITY: f64 = 9_223_372_036_854_775_808.0;

fn q(text: &str) -> Quantity {
    Quantity(text.to_owned())
}

/// CPU and memory requests and limits of one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU the scheduler reserves.
    pub cpu_request: Quantity,
    /// Memory the scheduler reserves.
    pub memory_request: Quantity,
    /// Most CPU the container may use.
    pub cpu_limit: Quantity,
    /// Most memory the container may use before it is killed.
    pub memory_limit: Quantity,
}

impl Resources {
    fn new(cpu_request: &str, memory_request: &str, cpu_limit: &str, memory_limit: &str) -> Self {
        Resources {
            cpu_request: q(cpu_request),
            memory_request: q(memory_request),
            cpu_limit: q(cpu_limit),
            memory_limit: q(memory_limit),
        }
    }

    fn validate(&self, field: &str) -> VResult<()> {
        for (name, quantity) in [
            ("cpu_request", &self.cpu_request),
            ("memory_request", &self.memory_request),
            ("cpu_limit", &self.cpu_limit),
            ("memory_limit", &self.memory_limit),
        ] {
            quantity.must_be_positive(&format!("{field}.{name}"))?;
        }
        if self.cpu_request.value() > self.cpu_limit.value() {
            return Err(ValidationError::new(
                format!("{field}.cpu_request"),
                "must not exceed cpu_limit",
            ));
        }
        if self.memory_request.value() > self.memory_limit.value() {
            return Err(ValidationError::new(
                format!("{field}.memory_request"),
                "must not exceed memory_limit",
            ));
        }
        Ok(())
    }
}

fn check_image(field: &str, image: &str) -> VResult<()> {
    let ok = !image.is_empty()
        && image.len() <= 255
        && image
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("{image:?} is not a container image reference"),
        ))
    }
}

/// The store's MySQL database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MysqlSpec {
    /// Container image.
    pub image: String,
    /// Size of the data volume.
    pub storage: Quantity,
    /// Container resources.
    pub resources: Resources,
}

impl Default for MysqlSpec {
    fn default() -> Self {
        MysqlSpec {
            image: "mysql:8.4".to_owned(),
            storage: q("1Gi"),
            resources: Resources::new("100m", "256Mi", "500m", "512Mi"),
        }
    }
}

/// The store's WordPress site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WordPressSpec {
    /// WordPress (Apache) image.
    pub image: String,
    /// WP-CLI image used by the seeding step.
    pub cli_image: String,
    /// Size of the volume holding WordPress files and uploads.
    pub storage: Quantity,
    /// Resources of the WordPress container.
    pub resources: Resources,
    /// Resources of the seeding container.
    pub cli_resources: Resources,
    /// Name of the store administrator.
    pub admin_user: String,
    /// E-mail address of the store administrator.
    pub admin_email: String,
}

impl Default for WordPressSpec {
    fn default() -> Self {
        WordPressSpec {
            image: "wordpress:6.8-apache".to_owned(),
            cli_image: "wordpress:cli-2.12".to_owned(),
            storage: q("2Gi"),
            resources: Resources::new("100m", "256Mi", "500m", "512Mi"),
            cli_resources: Resources::new("100m", "256Mi", "500m", "512Mi"),
            admin_user: "admin".to_owned(),
            admin_email: "admin@example.com".to_owned(),
        }
    }
}

/// TLS for the store's Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TlsSpec {
    /// A certificate issued by cert-manager through this ClusterIssuer.
    ClusterIssuer(String),
    /// An existing Secret of type `kubernetes.io/tls` in the store namespace.
    Secret(String),
}

/// How the store is reached from outside the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngressSpec {
    /// The host name of the store, e.g. `store-ab12cd34.storefactory.local`.
    pub host: String,
    /// IngressClass name; the cluster default when unset.
    pub class: Option<String>,
    /// TLS; plain HTTP when unset.
    pub tls: Option<TlsSpec>,
    /// Extra annotations on the Ingress.
    pub annotations: BTreeMap<String, String>,
    /// Custom domains: more hosts served by the same store, each a rule of its Ingress
    /// (and a name on its certificate when TLS comes from an issuer). Unique across stores,
    /// which the repository enforces; changed on a live store through
    /// `Provisioner::add_domain` and `Provisioner::remove_domain`. Records and clients
    /// from before custom domains leave it out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
}

impl IngressSpec {
    /// Every host the store answers on: its own host first, then its custom domains.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.host.as_str()).chain(self.domains.iter().map(String::as_str))
    }
}

/// Most custom domains a store may have: each is a rule of its Ingress and a name on its
/// certificate (ACME issuers allow 100 names per certificate; ten keeps renewals cheap).
pub const MAX_DOMAINS: usize = 10;

/// Longest host name DNS allows.
const MAX_HOST_LEN: usize = 253;

/// Checks `input` as a custom domain of a store and returns it normalised: surrounding
/// blanks and one trailing dot (the fully qualified form) are dropped and ASCII letters are
/// lowercased, since DNS names are case-insensitive and the Ingress takes them lowercase.
/// Everything else is refused with a message for a person: the result must be a DNS-1123
/// subdomain of at least two labels (a name someone can own, not `localhost`), at most 253
/// characters, neither a wildcard nor an IP address, and internationalised names must be
/// written in their ASCII form (`xn--...`).
pub fn normalize_domain(input: &str) -> VResult<String> {
    const FIELD: &str = "domain";
    let trimmed = input.trim();
    let host = trimmed
        .strip_suffix('.')
        .unwrap_or(trimmed)
        .to_ascii_lowercase();
    let refuse = |why: &str| {
        Err(ValidationError::new(
            FIELD,
            format!("{trimmed:?} is not a usable domain: {why}"),
        ))
    };
    if host.is_empty() {
        return refuse("it is empty");
    }
    if host.len() > MAX_HOST_LEN {
        return refuse("it is longer than 253 characters");
    }
    if host.contains('*') {
        return refuse("wildcards are not supported; add each host");
    }
    if host.parse::<std::net::IpAddr>().is_ok()
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::Ipv6Addr>()
            .is_ok()
    {
        return refuse("it is an IP address, not a host name");
    }
    if !host.is_ascii() {
        return refuse("write internationalised names in their ASCII form (xn--...)");
    }
    if !host.contains('.') {
        return refuse("it needs at least two labels, such as shop.example.com");
    }
    if !is_dns1123_subdomain(&host) {
        return refuse(
            "each dot-separated label must be 1 to 63 letters, digits or '-', starting and \
             ending with a letter or digit",
        );
    }
    if host
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return refuse("its last label is a number");
    }
    Ok(host)
}

/// Limits of the store namespace: a ResourceQuota and the LimitRange defaults that let pods
/// without explicit resources be admitted under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaSpec {
    /// Total CPU limits of all pods.
    pub cpu: Quantity,
    /// Total memory limits of all pods.
    pub memory: Quantity,
    /// Total storage requested by all volume claims.
    pub storage: Quantity,
    /// Most pods.
    pub pods: u32,
    /// Most volume claims.
    pub persistent_volume_claims: u32,
    /// Default CPU limit of a container that sets none.
    pub default_cpu_limit: Quantity,
    /// Default memory limit of a container that sets none.
    pub default_memory_limit: Quantity,
    /// Default CPU request of a container that sets none.
    pub default_cpu_request: Quantity,
    /// Default memory request of a container that sets none.
    pub default_memory_request: Quantity,
    /// Total node-local disk (writable layers, logs, `emptyDir`) all containers may request
    /// and use: without it a store could fill a node's disk.
    pub ephemeral_storage: Quantity,
    /// Node-local disk a container may use when it sets no limit of its own.
    pub default_ephemeral_storage_limit: Quantity,
    /// Node-local disk the scheduler reserves for a container that sets no request.
    pub default_ephemeral_storage_request: Quantity,
}

impl Default for QuotaSpec {
    fn default() -> Self {
        QuotaSpec {
            cpu: q("2"),
            memory: q("2Gi"),
            storage: q("10Gi"),
            pods: 10,
            persistent_volume_claims: 4,
            default_cpu_limit: q("500m"),
            default_memory_limit: q("512Mi"),
            default_cpu_request: q("100m"),
            default_memory_request: q("128Mi"),
            // Three containers (MySQL, WordPress, seeding) at their default limit, with room
            // for a retried seeding pod.
            ephemeral_storage: q("4Gi"),
            default_ephemeral_storage_limit: q("1Gi"),
            default_ephemeral_storage_request: q("100Mi"),
        }
    }
}

/// Network isolation of the store namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkPolicySpec {
    /// Whether NetworkPolicies are created at all.
    pub enabled: bool,
    /// Namespaces whose pods (the ingress controller) may reach WordPress.
    pub ingress_namespaces: Vec<String>,
    /// Whether the seeding step may reach public addresses over HTTP(S), which installing
    /// WooCommerce and the Storefront theme needs. WordPress itself never gets this.
    pub allow_internet_egress: bool,
    /// Address ranges (CIDRs such as `203.0.113.0/24`) WordPress may reach over HTTP(S):
    /// payment providers, update servers. Empty by default: WordPress reaches only MySQL and
    /// the cluster DNS.
    pub wordpress_egress_cidrs: Vec<String>,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        NetworkPolicySpec {
            enabled: true,
            // ingress-nginx (kind, minikube) and kube-system (k3s' Traefik).
            ingress_namespaces: vec!["ingress-nginx".to_owned(), "kube-system".to_owned()],
            allow_internet_egress: true,
            wordpress_egress_cidrs: Vec::new(),
        }
    }
}

/// Three-letter ISO 4217 currency code, e.g. `USD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    /// Validates a currency code.
    pub fn new(code: impl Into<String>) -> VResult<Self> {
        let code = code.into();
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(code))
        } else {
            Err(ValidationError::new(
                "currency",
                format!("{code:?} is not a three-letter ISO 4217 code such as USD"),
            ))
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Currency {
    fn default() -> Self {
        Currency("USD".to_owned())
    }
}

impl TryFrom<String> for Currency {
    type Error = ValidationError;
    fn try_from(value: String) -> VResult<Self> {
        Currency::new(value)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

/// Largest WordPress volume a store may ask for through the platform's edges (HTTP API,
/// Python), in GiB.
pub const MAX_STORAGE_GIB: u64 = 1024;
/// WordPress volume of a store that does not ask for one, in GiB.
pub const DEFAULT_STORAGE_GIB: u64 = 2;
/// The products a store is seeded with when its creator names none, as in the product this
/// replaces.
pub const DEFAULT_SAMPLE_PRODUCTS: &str = "T-Shirt|599|Cotton t-shirt\nJeans|1299|Denim jeans";

/// Everything a blueprint needs to render one store. Holds no secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    /// The store id.
    pub id: StoreId,
    /// Username of the owner.
    pub owner: String,
    /// Title of the WordPress site.
    #[serde(default = "default_title")]
    pub site_title: String,
    /// Shop currency.
    #[serde(default)]
    pub currency: Currency,
    /// Products to seed.
    #[serde(default)]
    pub products: Vec<Product>,
    /// StorageClass of the volumes; the cluster default when unset.
    #[serde(default)]
    pub storage_class: Option<String>,
    /// MySQL.
    #[serde(default)]
    pub mysql: MysqlSpec,
    /// WordPress and WP-CLI.
    #[serde(default)]
    pub wordpress: WordPressSpec,
    /// Ingress.
    #[serde(default)]
    pub ingress: IngressSpec,
    /// Namespace quota and limit defaults.
    #[serde(default)]
    pub quota: QuotaSpec,
    /// Network policies.
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,
    /// Extra parameters that a blueprint declares in its metadata.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

fn default_title() -> String {
    "My Store".to_owned()
}

impl StoreSpec {
    /// A spec with defaults for everything but the id, the owner and the host.
    pub fn new(id: StoreId, owner: impl Into<String>, host: impl Into<String>) -> Self {
        StoreSpec {
            id,
            owner: owner.into(),
            site_title: default_title(),
            currency: Currency::default(),
            products: Vec::new(),
            storage_class: None,
            mysql: MysqlSpec::default(),
            wordpress: WordPressSpec::default(),
            ingress: IngressSpec {
                host: host.into(),
                ..IngressSpec::default()
            },
            quota: QuotaSpec::default(),
            network_policy: NetworkPolicySpec::default(),
            params: BTreeMap::new(),
        }
    }

    /// The store's namespace, `store-<id>`.
    pub fn namespace(&self) -> String {
        self.id.namespace()
    }

    /// The public URL of the store.
    pub fn url(&self) -> String {
        let scheme = if self.ingress.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}/", self.ingress.host)
    }

    /// Storage reserved by the store in GiB: WordPress plus MySQL volumes, each rounded up.
    pub fn storage_gib(&self) -> u64 {
        // Saturating: quantities are validated after this may be called (edges size the
        // quota first), and a sum that does not fit is refused by the quota check anyway.
        self.wordpress
            .storage
            .gib_ceil()
            .saturating_add(self.mysql.storage.gib_ceil())
    }

    /// Grows the namespace's storage quota, if needed, so that it holds the WordPress and
    /// MySQL volumes: callers that size the volumes need not size the quota as well.
    pub fn fit_quota_to_volumes(&mut self) {
        let volumes = self.storage_gib();
        if self.quota.storage.gib_ceil() < volumes {
            self.quota.storage = Quantity::gib(volumes);
        }
    }

    /// The custom domains: at most [`MAX_DOMAINS`], each normalised
    /// ([`normalize_domain`]), none twice and none the store's own host; and none at all when
    /// TLS is a fixed Secret, whose certificate was not issued for names added later (with an
    /// issuer, the one certificate of the Ingress covers every host).
    fn validate_domains(&self) -> VResult<()> {
        const FIELD: &str = "ingress.domains";
        let domains = &self.ingress.domains;
        if domains.len() > MAX_DOMAINS {
            return Err(ValidationError::new(
                FIELD,
                format!("at most {MAX_DOMAINS} custom domains per store"),
            ));
        }
        if !domains.is_empty()
            && let Some(TlsSpec::Secret(secret)) = &self.ingress.tls
        {
            return Err(ValidationError::new(
                FIELD,
                format!(
                    "the store's TLS is the fixed Secret {secret:?}, whose certificate does not \
                     cover custom domains; use TLS through a cluster issuer, or none"
                ),
            ));
        }
        for (i, domain) in domains.iter().enumerate() {
            let normal = normalize_domain(domain).map_err(|e| ValidationError {
                field: FIELD.to_owned(),
                message: e.message,
            })?;
            if normal != *domain {
                return Err(ValidationError::new(
                    FIELD,
                    format!("{domain:?} must be written as {normal:?}"),
                ));
            }
            if *domain == self.ingress.host {
                return Err(ValidationError::new(
                    FIELD,
                    format!("{domain:?} is the store's own host"),
                ));
            }
            if domains[..i].contains(domain) {
                return Err(ValidationError::new(
                    FIELD,
                    format!("{domain:?} is listed twice"),
                ));
            }
        }
        Ok(())
    }

    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> VResult<()> {
        check_text("owner", &self.owner, 64)?;
        check_text("site_title", &self.site_title, MAX_TITLE_LEN)?;
        if !is_dns1123_subdomain(&self.ingress.host) {
            return Err(ValidationError::new(
                "ingress.host",
                format!(
                    "{:?} is not a valid host name (lowercase DNS-1123 subdomain)",
                    self.ingress.host
                ),
            ));
        }
        if let Some(class) = &self.ingress.class {
            check_subdomain("ingress.class", class)?;
        }
        self.validate_domains()?;
        match &self.ingress.tls {
            Some(TlsSpec::ClusterIssuer(name)) => {
                check_subdomain("ingress.tls.cluster_issuer", name)?
            }
            Some(TlsSpec::Secret(name)) => check_subdomain("ingress.tls.secret", name)?,
            None => {}
        }
        for (key, value) in &self.ingress.annotations {
            check_annotation_key(key)?;
            if value.len() > 4096 {
                return Err(ValidationError::new(
                    format!("ingress.annotations.{key}"),
                    "value is longer than 4096 bytes",
                ));
            }
        }
        if let Some(class) = &self.storage_class {
            check_subdomain("storage_class", class)?;
        }
        check_image("mysql.image", &self.mysql.image)?;
        self.mysql.storage.must_be_positive("mysql.storage")?;
        self.mysql.resources.validate("mysql.resources")?;
        check_image("wordpress.image", &self.wordpress.image)?;
        check_image("wordpress.cli_image", &self.wordpress.cli_image)?;
        self.wordpress
            .storage
            .must_be_positive("wordpress.storage")?;
        self.wordpress.resources.validate("wordpress.resources")?;
        self.wordpress
            .cli_resources
            .validate("wordpress.cli_resources")?;
        check_text("wordpress.admin_user", &self.wordpress.admin_user, 60)?;
        if !self
            .wordpress
            .admin_user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
        {
            return Err(ValidationError::new(
                "wordpress.admin_user",
                "may contain only letters, digits and . _ - @",
            ));
        }
        check_email("wordpress.admin_email", &self.wordpress.admin_email)?;
        for (name, quantity) in [
            ("quota.cpu", &self.quota.cpu),
            ("quota.memory", &self.quota.memory),
            ("quota.storage", &self.quota.storage),
            ("quota.default_cpu_limit", &self.quota.default_cpu_limit),
            (
                "quota.default_memory_limit",
                &self.quota.default_memory_limit,
            ),
            ("quota.default_cpu_request", &self.quota.default_cpu_request),
            (
                "quota.default_memory_request",
                &self.quota.default_memory_request,
            ),
            ("quota.ephemeral_storage", &self.quota.ephemeral_storage),
            (
                "quota.default_ephemeral_storage_limit",
                &self.quota.default_ephemeral_storage_limit,
            ),
            (
                "quota.default_ephemeral_storage_request",
                &self.quota.default_ephemeral_storage_request,
            ),
        ] {
            quantity.must_be_positive(name)?;
        }
        // Whether the quota admits the volume claims of the store's objects depends on its
        // blueprint, and is checked when they are rendered.
        if self.quota.pods == 0 {
            return Err(ValidationError::new(
                "quota.pods",
                "must allow at least one pod",
            ));
        }
        let volumes = self.wordpress.storage.value() + self.mysql.storage.value();
        if volumes > self.quota.storage.value() {
            return Err(ValidationError::new(
                "quota.storage",
                format!(
                    "{} is less than the volumes need ({} for WordPress + {} for MySQL)",
                    self.quota.storage, self.wordpress.storage, self.mysql.storage
                ),
            ));
        }
        if self.quota.default_ephemeral_storage_request.value()
            > self.quota.default_ephemeral_storage_limit.value()
        {
            return Err(ValidationError::new(
                "quota.default_ephemeral_storage_request",
                "must not exceed default_ephemeral_storage_limit",
            ));
        }
        for namespace in &self.network_policy.ingress_namespaces {
            check_label("network_policy.ingress_namespaces", namespace)?;
        }
        if self.network_policy.wordpress_egress_cidrs.len() > MAX_EGRESS_CIDRS {
            return Err(ValidationError::new(
                "network_policy.wordpress_egress_cidrs",
                format!("at most {MAX_EGRESS_CIDRS} ranges"),
            ));
        }
        for cidr in &self.network_policy.wordpress_egress_cidrs {
            check_cidr("network_policy.wordpress_egress_cidrs", cidr)?;
        }
        if self.products.len() > MAX_PRODUCTS {
            return Err(ValidationError::new(
                "products",
                format!(
                    "at most {MAX_PRODUCTS} products, got {}",
                    self.products.len()
                ),
            ));
        }
        for (i, product) in self.products.iter().enumerate() {
            product.validate(&format!("products[{i}]"))?;
        }
        let json_len = serde_json::to_string(&self.products).map_or(0, |j| j.len());
        if json_len > MAX_PRODUCTS_JSON_BYTES {
            return Err(ValidationError::new(
                "products",
                format!(
                    "together take {json_len} bytes; at most {MAX_PRODUCTS_JSON_BYTES} fit in a store"
                ),
            ));
        }
        for (key, value) in &self.params {
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(ValidationError::new(
                    format!("params.{key}"),
                    "parameter names are letters, digits and '_'",
                ));
            }
            if value.len() > 4096 || value.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    format!("params.{key}"),
                    "value is longer than 4096 bytes or has control characters",
                ));
            }
        }
        Ok(())
    }
}

/// Most address ranges WordPress may be allowed to reach.
pub const MAX_EGRESS_CIDRS: usize = 64;

/// Checks that `value` is an IPv4 or IPv6 network in CIDR notation with no host bits set
/// (`203.0.113.0/24`, `2001:db8::/32`): what a NetworkPolicy `ipBlock` takes, written so that
/// a reader sees the range it opens.
pub fn check_cidr(field: &str, value: &str) -> VResult<()> {
    let invalid = |why: &str| {
        ValidationError::new(
            field,
            format!("{value:?} is not a CIDR such as 203.0.113.0/24 or 2001:db8::/32 ({why})"),
        )
    };
    let (address, prefix) = value
        .split_once('/')
        .ok_or_else(|| invalid("no /prefix length"))?;
    let address: std::net::IpAddr = address.parse().map_err(|_| invalid("not an IP address"))?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("the prefix length is not a number"));
    }
    let prefix: u32 = prefix.parse().map_err(|_| invalid("bad prefix length"))?;
    let (bits, width) = match address {
        std::net::IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        std::net::IpAddr::V6(a) => (u128::from(a), 128),
    };
    if prefix > width {
        return Err(invalid("the prefix length is too long"));
    }
    let host_bits = width - prefix;
    let host_mask = if host_bits == 0 {
        0
    } else {
        u128::MAX >> (128 - host_bits)
    };
    if bits & host_mask != 0 {
        return Err(invalid("host bits are set"));
    }
    Ok(())
}

fn check_subdomain(field: &str, value: &str) -> VResult<()> {
    if is_dns1123_subdomain(value) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("{value:?} is not a valid Kubernetes object name"),
        ))
    }
}

fn check_annotation_key(key: &str) -> VResult<()> {
    let field = format!("ingress.annotations.{key}");
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if !name_ok || prefix.is_some_and(|p| !is_dns1123_subdomain(p)) {
        return Err(ValidationError::new(field, "is not a valid annotation key"));
    }
    Ok(())
}

fn check_email(field: &str, email: &str) -> VResult<()> {
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
                && domain.contains('.')
                && is_dns1123_subdomain(&domain.to_ascii_lowercase())
        });
    if valid {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("{email:?} is not an e-mail address"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> StoreSpec {
        StoreSpec::new(
            StoreId::new("abc123").unwrap(),
            "alice",
            "store-abc123.storefactory.local",
        )
    }

    #[test]
    fn default_spec_is_valid() {
        spec().validate().unwrap();
    }

    #[test]
    fn store_id_must_make_a_namespace() {
        assert!(StoreId::new("abc-123").is_ok());
        assert!(StoreId::new("a".repeat(MAX_STORE_ID_LEN)).is_ok());
        let too_long = StoreId::new("a".repeat(MAX_STORE_ID_LEN + 1)).unwrap_err();
        assert!(too_long.message.contains("longer than 57"), "{too_long}");
        for bad in ["", "ABC", "-abc", "abc-", "a_b", "a.b", "ä"] {
            assert!(StoreId::new(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(StoreId::new("x1").unwrap().namespace(), "store-x1");
        assert_eq!(
            StoreId::from_namespace("store-x1"),
            Some(StoreId::new("x1").unwrap())
        );
        assert_eq!(StoreId::from_namespace("kube-system"), None);
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = StoreId::generate();
        let b = StoreId::generate();
        assert_ne!(a, b);
        StoreId::new(a.as_str()).unwrap();
    }

    #[test]
    fn quantities_follow_kubernetes_syntax() {
        for good in [
            "2Gi", "512Mi", "500m", "1", "1.5", "1e3", "10G", "+1Ki", "1Ei", "2E",
        ] {
            Quantity::parse("q", good).unwrap();
        }
        for bad in ["", "Gi", "2GB", "2 Gi", "1.2.3", "abc", "2Gi; rm", "--2"] {
            assert!(Quantity::parse("q", bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(Quantity::parse("q", "2Gi").unwrap().gib_ceil(), 2);
        assert_eq!(Quantity::parse("q", "1500Mi").unwrap().gib_ceil(), 2);
        assert_eq!(Quantity::parse("q", "500m").unwrap().value(), 0.5);
    }

    #[test]
    fn storage_counts_wordpress_and_mysql_volumes() {
        let mut spec = spec();
        spec.wordpress.storage = Quantity::gib(5);
        spec.mysql.storage = Quantity::parse("q", "512Mi").unwrap();
        assert_eq!(spec.storage_gib(), 6);
    }

    #[test]
    fn huge_storage_saturates_and_is_refused_instead_of_overflowing() {
        let mut spec = spec();
        // Each rounds up to more GiB than half of u64: their sum used to overflow (a panic
        // in debug builds).
        spec.wordpress.storage = Quantity::parse("q", "9e300").unwrap();
        spec.mysql.storage = Quantity::parse("q", "9e300").unwrap();
        assert_eq!(spec.storage_gib(), u64::MAX);
        spec.fit_quota_to_volumes();
        assert_eq!(spec.quota.storage.gib_ceil(), u64::MAX);
        let err = spec.validate().unwrap_err();
        assert_eq!(err.field, "mysql.storage");
        assert!(
            err.message.contains("larger than Kubernetes accepts"),
            "{err}"
        );

        let mut spec = self::spec();
        spec.wordpress.storage = Quantity::parse("q", "8Ei").unwrap();
        spec.fit_quota_to_volumes();
        assert_eq!(spec.validate().unwrap_err().field, "wordpress.storage");
        // Infinity is not a quantity.
        assert!(Quantity::parse("q", "1e400").is_err());
        assert!(Quantity::parse("q", "1e999999999").is_err());
    }

    #[test]
    fn wordpress_egress_takes_cidrs_only() {
        let mut spec = spec();
        spec.network_policy.wordpress_egress_cidrs = vec![
            "203.0.113.0/24".to_owned(),
            "198.51.100.7/32".to_owned(),
            "2001:db8::/32".to_owned(),
            "0.0.0.0/0".to_owned(),
        ];
        spec.validate().unwrap();
        for bad in [
            "",
            "203.0.113.0",
            "203.0.113.1/24",
            "203.0.113.0/33",
            "2001:db8::1/32",
            "2001:db8::/129",
            "example.com/24",
            "10.0.0.0/+8",
            "10.0.0.0/08x",
            "10.0.0.0/8
- ipBlock: {cidr: 0.0.0.0/0}",
            " 10.0.0.0/8",
            "--all/8",
        ] {
            let mut spec = self::spec();
            spec.network_policy.wordpress_egress_cidrs = vec![bad.to_owned()];
            let err = spec.validate().unwrap_err();
            assert_eq!(
                err.field, "network_policy.wordpress_egress_cidrs",
                "{bad:?}"
            );
        }
        let mut spec = self::spec();
        spec.network_policy.wordpress_egress_cidrs = vec!["10.0.0.0/8".to_owned(); 65];
        assert!(spec.validate().is_err());
    }

    #[test]
    fn bad_hosts_are_rejected_with_the_field_name() {
        for bad in [
            "",
            "UPPER.example",
            "a..b",
            "-a.example",
            "a b",
            "a_b.example",
        ] {
            let mut spec = spec();
            spec.ingress.host = bad.to_owned();
            let err = spec.validate().unwrap_err();
            assert_eq!(err.field, "ingress.host", "{bad:?}");
        }
    }

    #[test]
    fn custom_domains_are_normalised_or_refused_with_a_reason() {
        for (input, normal) in [
            ("shop.example.com", "shop.example.com"),
            ("Shop.Example.COM", "shop.example.com"),
            ("shop.example.com.", "shop.example.com"),
            ("  www.shop-1.example.org ", "www.shop-1.example.org"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ] {
            assert_eq!(normalize_domain(input).unwrap(), normal, "{input:?}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("localhost", "two labels"),
            ("*.example.com", "wildcard"),
            ("10.0.0.1", "IP address"),
            ("2001:db8::1", "IP address"),
            ("[2001:db8::1]", "IP address"),
            ("bücher.example", "ASCII form"),
            ("a..example.com", "label"),
            ("-shop.example.com", "label"),
            ("shop_1.example.com", "label"),
            ("shop.example.com/path", "label"),
            ("shop.example.com:8080", "label"),
            ("shop.example.com..", "label"),
            ("shop.123", "number"),
        ] {
            let err = normalize_domain(bad).unwrap_err();
            assert_eq!(err.field, "domain");
            assert!(err.message.contains(why), "{bad:?}: {err}");
        }
        let long = format!("{}.example.com", vec!["a".repeat(63); 4].join("."));
        assert!(normalize_domain(&long).unwrap_err().message.contains("253"));
        let label = format!("{}.example.com", "a".repeat(64));
        assert!(normalize_domain(&label).is_err());
    }

    #[test]
    fn a_spec_holds_few_distinct_normalised_domains_other_than_its_host() {
        let mut spec = spec();
        spec.ingress.domains = vec!["shop.example.com".to_owned(), "www.example.com".to_owned()];
        spec.validate().unwrap();
        assert_eq!(
            spec.ingress.hosts().collect::<Vec<_>>(),
            [
                "store-abc123.storefactory.local",
                "shop.example.com",
                "www.example.com"
            ]
        );
        spec.ingress.tls = Some(TlsSpec::ClusterIssuer("letsencrypt".to_owned()));
        spec.validate().unwrap();

        let refused = |domains: Vec<String>, tls: Option<TlsSpec>, why: &str| {
            let mut spec = self::spec();
            spec.ingress.domains = domains;
            spec.ingress.tls = tls;
            let err = spec.validate().unwrap_err();
            assert_eq!(err.field, "ingress.domains");
            assert!(err.message.contains(why), "{err}");
        };
        let d = |s: &str| s.to_owned();
        refused(vec![d("Shop.example.com")], None, "must be written as");
        refused(vec![d("store-abc123.storefactory.local")], None, "own host");
        refused(vec![d("a.example"), d("a.example")], None, "twice");
        refused(
            (0..=MAX_DOMAINS).map(|i| format!("s{i}.example")).collect(),
            None,
            "at most 10",
        );
        refused(
            vec![d("a.example")],
            Some(TlsSpec::Secret("mine".to_owned())),
            "fixed Secret",
        );
    }

    #[test]
    fn records_from_before_custom_domains_read_without_them_and_write_none() {
        let json = r#"{"id":"abc","owner":"bob","ingress":{"host":"a.example"}}"#;
        let spec: StoreSpec = serde_json::from_str(json).unwrap();
        assert!(spec.ingress.domains.is_empty());
        let written = serde_json::to_string(&spec).unwrap();
        assert!(!written.contains("domains"), "{written}");
    }

    #[test]
    fn volumes_must_fit_the_namespace_quota() {
        let mut spec = spec();
        spec.wordpress.storage = Quantity::gib(20);
        let err = spec.validate().unwrap_err();
        assert_eq!(err.field, "quota.storage");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let json = r#"{"id":"abc","owner":"bob","ingress":{"host":"a.example","hots":"x"}}"#;
        let err = serde_json::from_str::<StoreSpec>(json).unwrap_err();
        assert!(err.to_string().contains("hots"), "{err}");
    }

    #[test]
    fn products_must_fit_in_a_config_map() {
        let mut spec = spec();
        let product = crate::product::Product {
            name: "n".repeat(200),
            price: crate::product::Price::parse("1").unwrap(),
            description: "d".repeat(2000),
        };
        spec.products = vec![product; 300];
        let err = spec.validate().unwrap_err();
        assert_eq!(err.field, "products");
        assert!(err.message.contains("at most 524288"), "{err}");
    }

    #[test]
    fn currency_is_three_uppercase_letters() {
        assert!(Currency::new("EUR").is_ok());
        for bad in ["eur", "EURO", "E1R", ""] {
            assert!(Currency::new(bad).is_err());
        }
    }

    #[test]
    fn resources_requests_cannot_exceed_limits() {
        let mut spec = spec();
        spec.mysql.resources.cpu_request = Quantity::parse("q", "2").unwrap();
        assert_eq!(
            spec.validate().unwrap_err().field,
            "mysql.resources.cpu_request"
        );
    }
}
