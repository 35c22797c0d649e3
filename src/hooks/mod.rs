//! The git hooks (docs/hooks.md), by hook: installation of git-hop's block
//! ([`install`]), what `pre-push` checks ([`pre_push`]) and what
//! `post-merge` says ([`post_merge`]). The production clone's `pre-commit`
//! and `reference-transaction` blocks are shell only (`hooks/`).

pub mod install;
pub mod post_merge;
pub mod pre_push;

pub use install::*;
pub use post_merge::post_merge_notices;
pub use pre_push::*;
