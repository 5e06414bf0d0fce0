# lmerTest's Satterthwaite and Kenward-Roger df at lme4's optimum of the issue-14 case (d6677
# of tests/reference/differential.json.gz); writes tests/reference/differential_issue14_df.json.gz.
# Run from the repo root:  Rscript tests/oracle/differential_issue14_df.R
suppressMessages({library(lmerTest); library(jsonlite)})
ref <- fromJSON(gzfile("tests/reference/differential.json.gz"), simplifyVector = FALSE)
cs <- Filter(function(c) c$id == "d6677", ref$cases)[[1]]
d <- as.data.frame(lapply(cs$data, unlist), stringsAsFactors = FALSE)
for (v in c("f", "a", "b", "c", "g")) d[[v]] <- factor(d[[v]], levels = sort(unique(d[[v]])))
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
m <- lmer(as.formula(cs$formula), d, REML = cs$reml, control = ctrl)
sat <- summary(m, ddf = "Satterthwaite")$coefficients
kr <- summary(m, ddf = "Kenward-Roger")$coefficients
out <- list(id = cs$id, formula = cs$formula, REML = unname(m@devcomp$cmp["REML"]),
            theta = unname(getME(m, "theta")), names = rownames(sat),
            satterthwaite_df = unname(sat[, "df"]), kenward_roger_df = unname(kr[, "df"]),
            se = unname(sat[, "Std. Error"]))
con <- gzfile("tests/reference/differential_issue14_df.json.gz", "w")
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(17)), con)
close(con)
