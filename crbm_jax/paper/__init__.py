"""The paper's stages, each a ``run_*(config, workdir)`` that writes its tables and
figures: ``table1`` (Table 1 / Figure 1, computed in ``cooccurrence`` and ``figure1``),
``table2``, ``table3`` (Section 4, with the SVM protocol of ``crbm_jax.autotag``),
``beyond``; ``reproduce`` runs them and writes the report (``report``, ``reading``);
``published`` holds the paper's own numbers."""
