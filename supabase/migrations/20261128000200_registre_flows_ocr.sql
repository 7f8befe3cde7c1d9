-- registre-flows: what OCR writes back besides the texts. Additive and idempotent.
-- structured_content: for an index, {"pages": [{"template", "circonscription", "cadastre", "lot",
-- "rows": [{"date", "numero", "nature", "parties": [{"name", "role"}], "remarques",
-- "radiations"}]}]} after the boost; null for actes.
ALTER TABLE extraction_queue
    ADD COLUMN IF NOT EXISTS structured_content jsonb;
