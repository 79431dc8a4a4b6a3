-- w3.sql - W3, an aggregate over a range of users (tens of ms); the same work as
-- w3_user_range (the bounds are computed here: pgbench's prepared mode sends them untyped).
\set b random_zipfian(1, :nbuckets, :zipf_s)
\set lo (:b - 1) * :width + 1
\set hi :b * :width
SELECT count(*), count(DISTINCT conv_id), max(created_at) FROM messages WHERE user_id BETWEEN :lo AND :hi;
