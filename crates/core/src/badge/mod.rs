//! Badges without I/O: the frame parser and its normalisation rules, the badge value (masked
//! when printed), its keyed hash, the member a directory answers with, and the member cache
//! port. The readers and the hasher are adapters (`jarvis-badge`).

pub mod cached;
pub mod frame;
pub mod id;
pub mod member;
pub mod normalize;

pub use cached::{BadgeHash, CacheStoreError, CachedMember, MemberCacheStore};
pub use id::Badge;
pub use member::{DirectoryAnswer, DirectoryError, Member, MemberDirectory};
