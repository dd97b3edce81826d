-- Channels beside e-mail (docs/CHANNELS.md). A user registers endpoints: webhooks (a URL, one
-- of four request shapes, an optional Standard Webhooks signing secret) and Web Push
-- subscriptions (the push service's URL and the browser's keys). Each channel a reminder
-- names in `reminders.channels` is delivered to each active endpoint of its user for that
-- channel. notify deactivates a push subscription the push service reports gone (404/410).
CREATE TABLE channel_endpoints (
    id             BIGSERIAL PRIMARY KEY,
    user_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel        TEXT NOT NULL CHECK (channel IN ('webhook', 'webpush')),
    -- The URL: the webhook, or the subscription's push-service endpoint.
    target         TEXT NOT NULL,
    -- The webhook's request shape; not used for Web Push.
    format         TEXT NOT NULL DEFAULT 'standard'
                   CHECK (format IN ('standard', 'slack', 'discord', 'ntfy')),
    -- Webhook signing secret, 'whsec_' + base64 (Standard Webhooks); NULL: unsigned.
    secret         TEXT,
    -- Web Push subscription keys, base64url, as the browser's PushSubscription gives them.
    p256dh         TEXT,
    auth           TEXT,
    active         BOOLEAN NOT NULL DEFAULT TRUE,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- When notify deactivated it, and why (the push service's answer).
    deactivated_at TIMESTAMPTZ,
    detail         TEXT,
    CHECK (channel <> 'webpush' OR (p256dh IS NOT NULL AND auth IS NOT NULL))
);
CREATE INDEX channel_endpoints_user ON channel_endpoints (user_id) WHERE active;

-- One delivery per reminder occurrence, channel and endpoint: e-mail deliveries keep
-- endpoint_id 0 (a user's address is no endpoint row). 0 rather than NULL because a
-- unique constraint treats NULLs as distinct.
ALTER TABLE deliveries ADD COLUMN endpoint_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_reminder_id_remind_at_channel_key;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_once UNIQUE (reminder_id, remind_at, channel, endpoint_id);
