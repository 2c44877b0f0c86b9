-- Users a proxy or an OpenID Connect issuer vouches for are keyed by a stable id,
-- (issuer, subject): `forward-auth` and the proxy's user id header, or the token's
-- `iss` and `sub`. The username is only what they are called. Local accounts (with
-- a password) have neither and are never matched by an identity.
ALTER TABLE users ADD COLUMN identity_issuer TEXT;
ALTER TABLE users ADD COLUMN identity_subject TEXT;
-- Before this, such users were keyed by their name. They are carried over: the
-- first identity that presents that name (from the same kind of source) claims the
-- account, habits and connections included, then it is keyed by its id.
UPDATE users SET identity_issuer = 'legacy-name', identity_subject = username
    WHERE password_hash IS NULL;
CREATE UNIQUE INDEX users_by_identity ON users (identity_issuer, identity_subject);
