"""The search service and what it is made of: request types (`requests`), query vectors (`query_vectors`),
rankings (`rankers`), the orchestration of one space or several (`service`), ordering and paging the result
(`result_order`), calibrated relevance (`calibration`), matched passages (`passage_matches`), similar items and
near-duplicates (`similar`), the 2-D map (`map_layout`), who may see what (`access`) and the golden-set
evaluation (`evaluation`)."""
