//! Who may do what: users and their tokens, projects and their members' roles, and read-only
//! share links to runs. Tokens are stored as hashes (see `auth`), never as given.

use balancelab_shared::{Member, Project, Role, ShareLink, TokenInfo, User};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Result, Store, StoreError};

/// The columns [`user_from_row`] reads.
const USER_COLUMNS: &str = "id, name, admin, disabled";

fn user_from_row(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        admin: row.try_get::<i64, _>("admin")? != 0,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
    })
}

fn token_from_row(row: &AnyRow) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        label: row.try_get("label")?,
        created_ms: row.try_get("created_ms")?,
        expires_ms: row.try_get("expires_ms")?,
        current: row.try_get::<i64, _>("current")? != 0,
    })
}

fn role_from_row(row: &AnyRow) -> Result<Role> {
    let name: String = row.try_get("role")?;
    Role::parse(&name).ok_or_else(|| StoreError::Corrupt(format!("unknown role {name:?}")))
}

fn project_from_row(row: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role_from_row(row)?,
    })
}

fn member_from_row(row: &AnyRow) -> Result<Member> {
    Ok(Member {
        user: row.try_get("name")?,
        role: role_from_row(row)?,
    })
}

/// What a token is for: a sign-in, or scripts and the CLI. Both expire (API tokens when
/// their maker said) and can be revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A browser session (or a `login` from a script): expires.
    Session,
    /// A token made for scripts and the CLI.
    Api,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Api => "api",
        }
    }
}

impl Store {
    /// How many users exist (none: the first start).
    pub(crate) async fn user_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// `None` if the name is taken.
    pub(crate) async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        admin: bool,
    ) -> Result<Option<User>> {
        let sql = format!(
            "INSERT INTO users (name, password_hash, admin) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING RETURNING {USER_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(name)
            .bind(password_hash)
            .bind(i64::from(admin))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The user named `name` and their password hash.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<(User, String)>> {
        let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok((user_from_row(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    /// Stores a token's hash for `user`; returns the token's id.
    pub async fn add_token(
        &self,
        user: i64,
        token_hash: &str,
        kind: TokenKind,
        lifetime_ms: Option<i64>,
    ) -> Result<i64> {
        self.add_labelled_token(user, token_hash, kind, lifetime_ms, None)
            .await
    }

    /// [`Store::add_token`] with a label saying what the token is for.
    pub(crate) async fn add_labelled_token(
        &self,
        user: i64,
        token_hash: &str,
        kind: TokenKind,
        lifetime_ms: Option<i64>,
        label: Option<&str>,
    ) -> Result<i64> {
        let sql = self.dialect.sql(
            "INSERT INTO tokens (token_hash, user_id, kind, expires_ms, label, created_ms) \
             VALUES ($1, $2, $3, NOW_MS + $4, $5, NOW_MS) RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .bind(user)
            .bind(kind.as_str())
            .bind(lifetime_ms)
            .bind(label)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("id")?)
    }

    /// `user`'s sessions and API tokens that still work, newest first; `current` marks the
    /// one whose hash is `presented`.
    pub(crate) async fn tokens_of(&self, user: i64, presented: &str) -> Result<Vec<TokenInfo>> {
        let sql = self.dialect.sql(
            "SELECT id, kind, label, created_ms, expires_ms, \
             CASE WHEN token_hash = $2 THEN 1 ELSE 0 END AS current FROM tokens \
             WHERE user_id = $1 AND (expires_ms IS NULL OR expires_ms > NOW_MS) ORDER BY id DESC",
        );
        let rows = sqlx::query(&sql)
            .bind(user)
            .bind(presented)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// The user a token (by hash) belongs to, if it exists, has not expired and its user is
    /// not disabled.
    pub(crate) async fn user_by_token(&self, token_hash: &str) -> Result<Option<User>> {
        let sql = self.dialect.sql(
            "SELECT u.id, u.name, u.admin, u.disabled FROM tokens t \
             JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 AND u.disabled = 0 \
             AND (t.expires_ms IS NULL OR t.expires_ms > NOW_MS)",
        );
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Revokes a token by hash (logging out).
    pub(crate) async fn delete_token(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM tokens WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revokes one of `user`'s sessions or API tokens by id; false if they have none with
    /// that id.
    pub(crate) async fn revoke_token(&self, user: i64, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tokens WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes every session and API token of `user`; how many there were, or `None` if
    /// there is no such user.
    pub(crate) async fn revoke_all_tokens(&self, user: i64) -> Result<Option<u64>> {
        let exists = sqlx::query("SELECT id FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let done = sqlx::query("DELETE FROM tokens WHERE user_id = $1")
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(Some(done.rows_affected()))
    }

    /// Sets `user`'s password hash and, in the same transaction, revokes their other
    /// sessions and API tokens (all but the one whose hash is `keep`): whoever held one may
    /// have learnt the old password.
    pub(crate) async fn set_password(&self, user: i64, hash: &str, keep: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM tokens WHERE user_id = $1 AND token_hash <> $2")
            .bind(user)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every user, by name.
    pub(crate) async fn users(&self) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY name");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Disables (revoking every session and token in the same transaction) or enables user
    /// `id`; `None` if there is no such user.
    pub(crate) async fn set_disabled(&self, id: i64, disabled: bool) -> Result<Option<User>> {
        let mut tx = self.pool.begin().await?;
        let sql = format!("UPDATE users SET disabled = $1 WHERE id = $2 RETURNING {USER_COLUMNS}");
        let row = sqlx::query(&sql)
            .bind(i64::from(disabled))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if disabled && row.is_some() {
            sqlx::query("DELETE FROM tokens WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Creates a project owned by `owner`; `None` if the name is taken.
    pub(crate) async fn create_project(&self, name: &str, owner: i64) -> Result<Option<Project>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO projects (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: i64 = row.try_get("id")?;
        sqlx::query("INSERT INTO members (project_id, user_id, role) VALUES ($1, $2, 'owner')")
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Project {
            id,
            name: name.to_owned(),
            role: Role::Owner,
        }))
    }

    /// Renames project `id`: false if another project has that name.
    pub(crate) async fn rename_project(&self, id: i64, name: &str) -> Result<bool> {
        // The unique index on names decides, also between two renames at once.
        match sqlx::query("UPDATE projects SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(id)
            .execute(&self.pool)
            .await
        {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The projects `user` belongs to, oldest first.
    pub async fn projects_of(&self, user: i64) -> Result<Vec<Project>> {
        let rows = sqlx::query(
            "SELECT p.id, p.name, m.role FROM projects p \
             JOIN members m ON m.project_id = p.id WHERE m.user_id = $1 ORDER BY p.id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(project_from_row).collect()
    }

    /// `user`'s role in `project`; `None` if they are not a member.
    pub(crate) async fn role_in(&self, project: i64, user: i64) -> Result<Option<Role>> {
        let row = sqlx::query("SELECT role FROM members WHERE project_id = $1 AND user_id = $2")
            .bind(project)
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(role_from_row).transpose()
    }

    /// The members of `project` and their roles.
    pub(crate) async fn members(&self, project: i64) -> Result<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT u.name, m.role FROM members m JOIN users u ON u.id = m.user_id \
             WHERE m.project_id = $1 ORDER BY u.name",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    /// Gives the user named `user` `role` in `project` (adding them if needed).
    pub(crate) async fn set_member(
        &self,
        project: i64,
        user: &str,
        role: Role,
    ) -> Result<MemberChange> {
        let sql = "INSERT INTO members (project_id, user_id, role) \
                   SELECT $1, id, $2 FROM users WHERE name = $3 \
                   ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role";
        let change = sqlx::query(sql)
            .bind(project)
            .bind(role.as_str())
            .bind(user);
        self.change_members(project, change).await
    }

    /// Removes the user named `user` from `project`.
    pub(crate) async fn remove_member(&self, project: i64, user: &str) -> Result<MemberChange> {
        let sql = "DELETE FROM members WHERE project_id = $1 \
                   AND user_id = (SELECT id FROM users WHERE name = $2)";
        let change = sqlx::query(sql).bind(project).bind(user);
        self.change_members(project, change).await
    }

    /// Runs `change` on `project`'s members in a transaction that keeps at least one owner:
    /// the project's row is locked first, so two owners demoting each other at once are
    /// serialised and the second finds itself the last.
    async fn change_members<'q>(
        &self,
        project: i64,
        change: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<MemberChange> {
        let mut tx = self.pool.begin().await?;
        let lock = self
            .dialect
            .sql("SELECT id FROM projects WHERE id = $1 FOR_UPDATE");
        sqlx::query(&lock)
            .bind(project)
            .fetch_optional(&mut *tx)
            .await?;
        if change.execute(&mut *tx).await?.rows_affected() != 1 {
            return Ok(MemberChange::NoSuchMember);
        }
        let owners: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM members WHERE project_id = $1 AND role = 'owner'",
        )
        .bind(project)
        .fetch_one(&mut *tx)
        .await?;
        if owners == 0 {
            // Dropped without a commit: rolled back.
            return Ok(MemberChange::LastOwner);
        }
        tx.commit().await?;
        Ok(MemberChange::Done)
    }

    /// Puts runs that belong to no project (made before projects existed) into `project`.
    pub(crate) async fn adopt_orphan_runs(&self, project: i64) -> Result<u64> {
        let done = sqlx::query("UPDATE runs SET project_id = $1 WHERE project_id IS NULL")
            .bind(project)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Stores a share link's token hash for run `run`; returns the link.
    pub(crate) async fn create_share_link(
        &self,
        run: i64,
        token_hash: &str,
        by: &str,
    ) -> Result<ShareLink> {
        let row = sqlx::query(
            "INSERT INTO share_links (token_hash, run_id, created_by) VALUES ($1, $2, $3) \
             RETURNING id, run_id, created_by, created_at, revoked",
        )
        .bind(token_hash)
        .bind(run)
        .bind(by)
        .fetch_one(&self.pool)
        .await?;
        share_from_row(&row)
    }

    /// Run `run`'s share links, revoked ones included (tokens are not kept, only hashes).
    pub(crate) async fn share_links(&self, run: i64) -> Result<Vec<ShareLink>> {
        let rows = sqlx::query(
            "SELECT id, run_id, created_by, created_at, revoked FROM share_links \
             WHERE run_id = $1 ORDER BY id",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(share_from_row).collect()
    }

    /// Revokes share link `id` of run `run`; false if the run has no such link.
    pub(crate) async fn revoke_share_link(&self, run: i64, id: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE share_links SET revoked = 1 WHERE id = $1 AND run_id = $2")
            .bind(id)
            .bind(run)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The run a share link (by token hash) opens, unless it was revoked.
    pub(crate) async fn shared_run(&self, token_hash: &str) -> Result<Option<i64>> {
        // A disabled user's links open nothing while they are disabled.
        let row = sqlx::query(
            "SELECT s.run_id FROM share_links s JOIN users u ON u.name = s.created_by \
             WHERE s.token_hash = $1 AND s.revoked = 0 AND u.disabled = 0",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| row.try_get("run_id")).transpose()?)
    }
}

fn share_from_row(row: &AnyRow) -> Result<ShareLink> {
    Ok(ShareLink {
        id: row.try_get("id")?,
        run_id: row.try_get("run_id")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        revoked: row.try_get::<i64, _>("revoked")? != 0,
    })
}

/// What became of a change to a project's members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MemberChange {
    /// Made.
    Done,
    /// No such user (to add) or member (to remove); nothing changed.
    NoSuchMember,
    /// It would have left the project without an owner; nothing changed.
    LastOwner,
}
