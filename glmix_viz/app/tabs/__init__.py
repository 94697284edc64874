"""The explorer's views, one module each; every module exports ``VIEW`` (:class:`glmix_viz.app.page.View`) and
:data:`glmix_viz.app.views.VIEWS` lists them in tab order."""
