"""Running the product: typed environment readers (`env`), start-up checks (`checks`), request guards and error
mapping (`guards`, `upload_limits`, `json_input`), logs, metrics, `/healthz`, model warm-up and the gunicorn
configuration. It imports nothing else of search but the models."""
