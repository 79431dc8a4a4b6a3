-- demo.sql - the quickstart's small chat schema and data (run as role cachesvc on db app).
CREATE TABLE users (
    id     bigint PRIMARY KEY,
    name   text NOT NULL,
    email  text NOT NULL
);
CREATE TABLE messages (
    id          bigserial PRIMARY KEY,
    conv_id     bigint NOT NULL,
    user_id     bigint NOT NULL REFERENCES users (id),
    content     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_conv_created ON messages (conv_id, created_at DESC);
CREATE INDEX messages_user ON messages (user_id);
-- conv_id and user_id are not in the primary key: invalidating by them needs the old
-- row's values on UPDATE/DELETE, which only REPLICA IDENTITY FULL sends.
ALTER TABLE messages REPLICA IDENTITY FULL;

INSERT INTO users
SELECT i, 'user ' || i, 'user' || i || '@example.com' FROM generate_series(1, 1000) i;
INSERT INTO messages (conv_id, user_id, content, created_at)
SELECT 1 + i % 200, 1 + i % 1000, 'message ' || i || ' ' || repeat('x', 40),
       now() - make_interval(secs => 10000 - i)
FROM generate_series(1, 10000) i;

CREATE PUBLICATION cachesvc FOR TABLE users, messages;
