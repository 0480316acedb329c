"""tuwen's stages on a Ray cluster (the optional ``ray`` extra: ``pip install 'tuwen[ray]'``).

The embedded single-process path stays the default; nothing here is imported by ``import tuwen``, and Ray itself is
imported only when one of these functions runs. Each function runs the same code as its single-process stage on
Ray workers and gives the same results: workers compute, the driver alone writes to the workspace, through the same
manifest transaction as a local run (so a cluster run is resumable and atomic the same way).

* :func:`tuwen.distributed.embed.embed_workspace_ray` — encoders as a pool of Ray Data actors.
* :func:`tuwen.distributed.recommend.compare_ray` — each recommender of an evaluation as its own Ray task.
* :func:`tuwen.distributed.ablation.ablation_ray` — each variant of the modality ablation as its own Ray task.
* :func:`tuwen.distributed.recommend.recommend_all_ray` — batch recommendations for every shopper through Ray Data.
* :func:`tuwen.distributed.train.train_ray` — a product model's training jobs (folds, members, refits) as Ray tasks.
"""
