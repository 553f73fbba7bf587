-- Provider callbacks name a payment by the provider's id (e.g. Daraja's
-- CheckoutRequestID).
CREATE INDEX payments_by_provider_reference ON payments (connector, provider_reference);
