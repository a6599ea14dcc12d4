"""Provision WooCommerce stores on Kubernetes: specs, blueprints, users and quotas, and a
Provisioner with blocking and asyncio APIs."""

from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from os import PathLike
from types import TracebackType
from typing import Any, List, Literal, Optional, Tuple, Union

__version__: str
DEFAULT_BLUEPRINT: str

Product = dict[str, str]
"""`{"name": ..., "price": "5.99", "description": ...}`"""

ProductsInput = Union[str, Sequence[Mapping[str, Any]], None]

class StorefactoryError(Exception):
    """Base class of every error Storefactory raises."""

class ValidationError(StorefactoryError):
    """The input is not acceptable. `field` names what to fix; the message says how."""

    field: Optional[str]

class NotFound(StorefactoryError):
    """The store, user or blueprint does not exist."""

class Conflict(StorefactoryError):
    """The current state does not allow the operation."""

class AlreadyExists(Conflict):
    """Something with this name or id already exists."""

class QuotaExceeded(StorefactoryError):
    """The owner's quota does not allow another store of this size."""

class ClusterUnavailable(StorefactoryError):
    """The cluster or the database cannot be reached or is busy; retrying later may work."""

class ClusterError(StorefactoryError):
    """The cluster refused the operation for a reason that is not the caller's."""

class StoreFailed(StorefactoryError):
    """A store that was waited for failed (or is being deleted) and will not become ready."""

class WaitTimeout(StorefactoryError):
    """A wait ran out of time before the store got where it was going."""

class InternalError(StorefactoryError):
    """A fault inside Storefactory or its configuration."""

def parse_products(text: str) -> list[Product]:
    """Parses `Name|Price|Description` lines or a JSON list, as the API does."""

def validate_products(products: ProductsInput) -> list[Product]:
    """Checks products (text, or a list of dicts) as the API does; returns them normalised."""

class StoreSpec:
    """What to build for one store. Validated when made; immutable."""

    def __init__(
        self,
        owner: str,
        *,
        sample_products: ProductsInput = None,
        storage_size_gi: Optional[int] = None,
        title: Optional[str] = None,
        currency: Optional[str] = None,
        id: Optional[str] = None,
        domain: Optional[str] = None,
        host: Optional[str] = None,
        storage_class: Optional[str] = None,
        ingress_class: Optional[str] = None,
        tls_cluster_issuer: Optional[str] = None,
        params: Optional[Mapping[str, str]] = None,
    ) -> None: ...
    @staticmethod
    def from_dict(value: Mapping[str, Any]) -> StoreSpec: ...
    def to_dict(self) -> dict[str, Any]: ...
    @property
    def id(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def domains(self) -> list[str]: ...
    @property
    def url(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def storage_gib(self) -> int: ...
    @property
    def products(self) -> list[Product]: ...

class Blueprints:
    """The built-in blueprints plus registered directories."""

    def __init__(self, dir: Union[str, PathLike[str], None] = None) -> None: ...
    def register_dir(self, dir: Union[str, PathLike[str]]) -> list[str]: ...
    def names(self) -> list[str]: ...
    def render(self, spec: StoreSpec, blueprint: str = ...) -> list[dict[str, Any]]: ...
    def render_yaml(self, spec: StoreSpec, blueprint: str = ...) -> str: ...

class User:
    username: str
    role: Literal["admin", "user"]
    max_stores: int
    max_storage_gib: int
    created_at: float

class Database:
    """The platform's SQLite database: users, quotas and store records."""

    def __init__(self, path: Union[str, PathLike[str]]) -> None: ...
    @property
    def path(self) -> Optional[str]: ...
    def create_user(
        self,
        username: str,
        password: str,
        *,
        role: Literal["admin", "user"] = "user",
        max_stores: Optional[int] = None,
        max_storage_gib: Optional[int] = None,
    ) -> User: ...
    def get_user(self, username: str) -> Optional[User]: ...
    def list_users(self) -> list[User]: ...
    def set_quota(
        self,
        username: str,
        *,
        max_stores: Optional[int] = None,
        max_storage_gib: Optional[int] = None,
    ) -> User: ...
    def set_role(self, username: str, role: Literal["admin", "user"]) -> User: ...
    def usage(self, username: str) -> dict[str, int]: ...
    def add_webhook(
        self,
        owner: str,
        url: str,
        *,
        events: Literal["all", "status"] = "all",
        all_stores: bool = False,
        token_key: Optional[str] = None,
        allow_private: bool = False,
        max_per_owner: int = 10,
    ) -> Webhook:
        """Registers a webhook for `owner`'s stores (every user's with `all_stores`, for an
        admin) and returns it with its signing secret in `secret`, this once.

        The rules are the HTTP API's (https, no private or cluster-internal host unless
        `allow_private`, at most `max_per_owner` per user). The secret is sealed under the
        server's token key: pass the key `serve` is given as `token_key`, or `None` for the
        one a server without one keeps in the database.

        Raises `ValidationError` (`field`: `url`, `events`, `all_stores`, or `token_key` for
        a key that is not the server's), `NotFound` (no such owner) or `Conflict` (the
        owner has the most webhooks allowed).
        """
    def webhooks(self, *, owner: Optional[str] = None) -> list[Webhook]:
        """Registered webhooks, oldest first: `owner`'s or everyone's. Never their secrets."""
    def remove_webhook(self, webhook_id: str) -> None:
        """Removes a webhook and its delivery log (pending deliveries are not sent).
        Raises `NotFound`."""
    def webhook_deliveries(self, webhook_id: str, *, limit: int = 50) -> list[WebhookDelivery]:
        """The newest `limit` (1 to 200) deliveries of a webhook, newest first. Raises
        `NotFound`, or `ValidationError` with `field` `limit`."""

class Webhook:
    """A registered webhook: its owner's store events are POSTed to `url`, signed.

    `secret` is set only on the object `Database.add_webhook` returns; `repr()` hides it.
    """

    id: str
    url: str
    events: Literal["all", "status"]
    all_stores: bool
    owner: str
    created_at: float
    secret: Optional[str]

class WebhookDelivery:
    """One delivery of one store event to a webhook, as its log shows it."""

    id: int
    """Sent to the receiver as `Storefactory-Delivery`, the same on every attempt."""
    store_id: str
    event_seq: int
    event: Literal["status", "step", "warning"]
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: Optional[int]
    last_error: Optional[str]
    next_attempt_at: Optional[float]
    """When the next attempt is due, for a pending delivery (seconds since the epoch)."""
    created_at: float
    updated_at: float

StoreStatus = Literal[
    "initialized",
    "provisioning",
    "ready",
    "failed",
    "deleting",
    "deleted",
    "suspending",
    "suspended",
    "resuming",
    "updating",
    "restoring",
]

class Store:
    """A store as the platform records it. Never carries a password."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def status(self) -> StoreStatus: ...
    @property
    def reason(self) -> Optional[str]: ...
    @property
    def blueprint(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def domains(self) -> list[str]: ...
    @property
    def url(self) -> str: ...
    @property
    def storage_gib(self) -> int: ...
    @property
    def created_at(self) -> float: ...
    @property
    def updated_at(self) -> float: ...
    @property
    def spec(self) -> StoreSpec: ...

class Event:
    """One entry of a store's history."""

    seq: int
    store_id: str
    at: float
    kind: Literal["status", "step", "warning"]
    status: Optional[StoreStatus]
    reason: Optional[str]
    step: Optional[str]
    message: Optional[str]
    is_terminal: bool

class Credentials:
    username: str
    password: str
    admin_url: str

BackupKind = Literal["manual", "scheduled"]
BackupStatus = Literal["pending", "completed", "failed"]
RestoreStatus = Literal["waiting", "running", "completed", "failed"]

class Backup:
    """A backup of a store: its database and WordPress files, kept by the platform."""

    id: str
    store_id: str
    kind: BackupKind
    status: BackupStatus
    size_bytes: Optional[int]
    sha256: Optional[str]
    created_at: float
    finished_at: Optional[float]
    error: Optional[str]

class Restore:
    """A restore of a backup into a store (a clone's waits for the clone to be ready)."""

    id: str
    store_id: str
    backup_id: str
    status: RestoreStatus
    old_url: Optional[str]
    new_url: Optional[str]
    created_at: float
    finished_at: Optional[float]
    error: Optional[str]

class EventStream(Iterator[Event], AsyncIterator[Event]):
    def __iter__(self) -> EventStream: ...
    def __next__(self) -> Event: ...
    def __aiter__(self) -> EventStream: ...
    def __anext__(self) -> Awaitable[Event]: ...

class Provisioner:
    """Creates, follows and deletes stores on a cluster, recording them in a Database."""

    def __init__(
        self,
        database: Database,
        *,
        kubeconfig: Union[str, PathLike[str], None] = None,
        context: Optional[str] = None,
        blueprints: Optional[Blueprints] = None,
        leader: bool = True,
        lease_namespace: str = "default",
        ready_timeout: float = 900.0,
        concurrency: int = 16,
        paused_backend: Optional[str] = None,
        backup_endpoint: Optional[str] = None,
    ) -> None: ...
    def create(
        self,
        spec: StoreSpec,
        *,
        name: Optional[str] = None,
        blueprint: Optional[str] = None,
        inputs: Optional[Mapping[str, str]] = None,
    ) -> Store: ...
    def create_async(
        self,
        spec: StoreSpec,
        *,
        name: Optional[str] = None,
        blueprint: Optional[str] = None,
        inputs: Optional[Mapping[str, str]] = None,
    ) -> Awaitable[Store]: ...
    def get(self, store_id: str) -> Store: ...
    def get_async(self, store_id: str) -> Awaitable[Store]: ...
    def list(self, *, owner: Optional[str] = None, include_deleted: bool = False) -> list[Store]: ...
    def list_async(
        self, *, owner: Optional[str] = None, include_deleted: bool = False
    ) -> Awaitable[list[Store]]: ...
    def delete(self, store_id: str) -> Store: ...
    def delete_async(self, store_id: str) -> Awaitable[Store]: ...
    def retry(self, store_id: str) -> Store: ...
    def retry_async(self, store_id: str) -> Awaitable[Store]: ...
    def suspend(self, store_id: str) -> Store: ...
    def suspend_async(self, store_id: str) -> Awaitable[Store]: ...
    def resume(self, store_id: str) -> Store: ...
    def resume_async(self, store_id: str) -> Awaitable[Store]: ...
    def add_domain(self, store_id: str, domain: str) -> Store: ...
    def add_domain_async(self, store_id: str, domain: str) -> Awaitable[Store]: ...
    def remove_domain(self, store_id: str, domain: str) -> Store: ...
    def remove_domain_async(self, store_id: str, domain: str) -> Awaitable[Store]: ...
    def change(
        self,
        store_id: str,
        *,
        storage_size_gi: Optional[int] = None,
        sample_products: ProductsInput = None,
        title: Optional[str] = None,
        currency: Optional[str] = None,
        wordpress_resources: Optional[Mapping[str, str]] = None,
        mysql_resources: Optional[Mapping[str, str]] = None,
    ) -> Store: ...
    def change_async(
        self,
        store_id: str,
        *,
        storage_size_gi: Optional[int] = None,
        sample_products: ProductsInput = None,
        title: Optional[str] = None,
        currency: Optional[str] = None,
        wordpress_resources: Optional[Mapping[str, str]] = None,
        mysql_resources: Optional[Mapping[str, str]] = None,
    ) -> Awaitable[Store]: ...
    def credentials(self, store_id: str) -> Credentials: ...
    def credentials_async(self, store_id: str) -> Awaitable[Credentials]: ...
    def backup(self, store_id: str) -> Backup: ...
    def backup_async(self, store_id: str) -> Awaitable[Backup]: ...
    def backups(self, store_id: str) -> List[Backup]: ...
    def backups_async(self, store_id: str) -> Awaitable[List[Backup]]: ...
    def delete_backup(self, store_id: str, backup_id: str) -> Backup: ...
    def delete_backup_async(self, store_id: str, backup_id: str) -> Awaitable[Backup]: ...
    def restore(self, store_id: str, backup_id: str) -> Restore: ...
    def restore_async(self, store_id: str, backup_id: str) -> Awaitable[Restore]: ...
    def clone_store(
        self,
        source_id: str,
        spec: StoreSpec,
        *,
        name: Optional[str] = None,
        inputs: Optional[Mapping[str, str]] = None,
    ) -> Tuple[Store, Restore]: ...
    def clone_store_async(
        self,
        source_id: str,
        spec: StoreSpec,
        *,
        name: Optional[str] = None,
        inputs: Optional[Mapping[str, str]] = None,
    ) -> Awaitable[Tuple[Store, Restore]]: ...
    def wait(
        self,
        store_id: str,
        *,
        until: Literal["ready", "deleted", "suspended"] = "ready",
        timeout: float = 600.0,
    ) -> Optional[Store]: ...
    def wait_async(
        self,
        store_id: str,
        *,
        until: Literal["ready", "deleted", "suspended"] = "ready",
        timeout: float = 600.0,
    ) -> Awaitable[Optional[Store]]: ...
    def events(
        self, store_id: str, *, after: int = 0, timeout: Optional[float] = None
    ) -> EventStream: ...
    def start(self) -> None: ...
    def stop(self, timeout: float = 30.0) -> None: ...
    @property
    def running(self) -> bool: ...
    @property
    def leading(self) -> bool: ...
    def __enter__(self) -> Provisioner: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
