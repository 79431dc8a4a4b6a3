-- w2.sql - W2, the last 50 messages of a conversation; the same statement as w2_messages.
\set conv random_zipfian(1, :nconvs, :zipf_s)
SELECT id, user_id, content, created_at FROM messages WHERE conv_id = :conv ORDER BY created_at DESC LIMIT 50;
