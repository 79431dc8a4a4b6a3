-- writes.sql - the steady writer of the invalidation-lag row: 10 users rows per commit (each
-- invalidates one w1_profile key); run with pgbench -R (commits/s): rows/s = 10 x the rate.
-- users, not messages: a messages change also invalidates the W3 aggregate table-wide, and
-- that is debounced by min_lifetime (5 s), which would be measured instead of the stream.
\set id random(1, :nusers - 9)
UPDATE users SET email = email WHERE id BETWEEN :id AND :id + 9;
