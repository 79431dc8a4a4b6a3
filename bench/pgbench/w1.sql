-- w1.sql - W1, profile by id (point read); the same statement as cachesvc's w1_profile.
\set id random_zipfian(1, :nusers, :zipf_s)
SELECT id, name, email FROM users WHERE id = :id;
