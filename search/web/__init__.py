"""The HTML pages: search, results, item and map (`pages`), how hits look on them (`presenters`), the search form
(`search_form`), stored media served after the access check (`file_serving`), and the error pages."""
