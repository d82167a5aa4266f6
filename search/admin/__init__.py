"""Curation in the Django admin: items, spaces and jobs, one module each (imported here to register them)."""

from django.contrib import admin

from search.admin import item_admin, job_admin, space_admin  # noqa: F401  (each registers its model admin)

# The admin is the product's curation desk, named as the product (templates/admin/base_site.html brands it).
admin.site.site_header = "Multimodal search · Curate"
admin.site.site_title = "Curate · Multimodal search"
admin.site.index_title = "Curation"
admin.site.site_url = "/"
