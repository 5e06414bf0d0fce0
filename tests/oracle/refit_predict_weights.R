# lme4 on issue 14's refit/predict/weights cases; writes
# tests/reference/refit_predict_weights.json.gz.  Run from the repo root:
#   Rscript tests/oracle/refit_predict_weights.R
# * predict_na: predict() with a missing grouping value in newdata (error unless
#   allow.new.levels = TRUE, then the population-level prediction for that row);
# * zero_weights: lmer with some prior weights 0, next to lmer on those rows dropped
#   (sigma, criteria, logLik, nobs, df.residual, Satterthwaite and Kenward-Roger df).
# Factors are built with sorted levels (numbers numerically), as mmfast does.
suppressMessages({library(lme4); library(lmerTest); library(pbkrtest); library(jsonlite)})
load_data <- function(name) read.csv(gzfile(file.path("src/mmfast/datasets/data", paste0(name, ".csv.gz"))))
as_fac <- function(x) factor(x, levels = sort(unique(x)))
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
gctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
out <- list()

# --- predict with a missing grouping value ------------------------------------------------
sl <- load_data("sleepstudy"); sl$Subject <- as_fac(sl$Subject)
m <- lmer(Reaction ~ Days + (Days | Subject), sl, control = ctrl)
nd <- data.frame(Days = c(1, 2, 3, 4), Subject = c("308", NA, "309", "999"))
err <- tryCatch({predict(m, newdata = nd[1:3, ]); ""}, error = function(e) conditionMessage(e))
out$predict_na_lmm <- list(formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE,
  newdata = list(Days = nd$Days, Subject = nd$Subject), error_default = err,
  pred_allow_new = unname(predict(m, newdata = nd, allow.new.levels = TRUE)),
  pred_pop = unname(predict(m, newdata = nd, re.form = NA)))
cb <- load_data("cbpp"); cb$herd <- as_fac(cb$herd); cb$period <- as_fac(cb$period)
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cb, binomial, control = gctrl)
ndg <- data.frame(period = factor(c("1", "2", "3", "4"), levels = levels(cb$period)),
                  herd = c("1", NA, "3", NA))
errg <- tryCatch({predict(g, newdata = ndg); ""}, error = function(e) conditionMessage(e))
out$predict_na_glmm <- list(formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
  newdata = list(period = as.character(ndg$period), herd = ndg$herd), error_default = errg,
  pred_link = unname(predict(g, newdata = ndg, allow.new.levels = TRUE)),
  pred_response = unname(predict(g, newdata = ndg, allow.new.levels = TRUE, type = "response")))

# --- zero prior weights ------------------------------------------------------------------
w <- rep(c(1, 2, 0.5, 1.5, 0, 1), length.out = nrow(sl))
w[c(3, 50, 51, 100)] <- 0
sl$w <- w
summ <- function(m, reml) {
  co <- summary(m, ddf = "Satterthwaite")$coefficients
  kr <- if (reml) summary(m, ddf = "Kenward-Roger")$coefficients else NULL
  list(REML = reml, fixef = unname(fixef(m)), se = unname(sqrt(diag(as.matrix(vcov(m))))),
       theta = unname(getME(m, "theta")), sigma = sigma(m),
       logLik = as.numeric(logLik(m)), logLik_df = attr(logLik(m), "df"),
       logLik_nobs = attr(logLik(m), "nobs"),
       objective = as.numeric(if (reml) REMLcrit(m) else deviance(m)),
       deviance = if (reml) NA else deviance(m),
       AIC = AIC(m), BIC = BIC(m), nobs = nobs(m), df_residual = df.residual(m),
       sat_df = unname(co[, "df"]),
       kr_df = if (is.null(kr)) NULL else unname(kr[, "df"]),
       kr_se = if (is.null(kr)) NULL else unname(kr[, "Std. Error"]))
}
for (reml in c(TRUE, FALSE)) {
  mw <- lmer(Reaction ~ Days + (Days | Subject), sl, weights = w, REML = reml, control = ctrl)
  md <- lmer(Reaction ~ Days + (Days | Subject), sl[w > 0, ], weights = w, REML = reml, control = ctrl)
  key <- if (reml) "reml" else "ml"
  out[[paste0("zero_weights_", key)]] <- list(weights = w, formula = "Reaction ~ Days + (Days | Subject)",
    zero = summ(mw, reml), dropped = summ(md, reml))
}
# lm with the same zero weights (the null model of variance_test / anova against an lmer fit)
lw <- lm(Reaction ~ Days, sl, weights = w)
out$zero_weights_lm <- list(formula = "Reaction ~ Days", weights = w, coef = unname(coef(lw)),
  sigma = sigma(lw), logLik = as.numeric(logLik(lw)), logLik_df = attr(logLik(lw), "df"),
  nobs = nobs(lw), df_residual = df.residual(lw), AIC = AIC(lw), BIC = BIC(lw),
  se = unname(sqrt(diag(vcov(lw)))))
out[["_meta"]] <- list(script = "tests/oracle/refit_predict_weights.R",
                       control = "bobyqa, rhoend 1e-12 (tight)",
                       lme4 = as.character(packageVersion("lme4")),
                       lmerTest = as.character(packageVersion("lmerTest")),
                       pbkrtest = as.character(packageVersion("pbkrtest")), R = R.version.string)
con <- gzfile("tests/reference/refit_predict_weights.json.gz", "w")
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, null = "null", na = "null"), con)
close(con)
